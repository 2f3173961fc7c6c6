/* libFuzzer target: Retry-After values (sapwf_retry_after: delay-seconds, or an HTTP-date
 * read by curl_getdate). Checks the range of every answer, and that a plain number is read
 * exactly. MIT licence, see LICENSE. */
#include "headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *value = malloc(size > 0 ? size : 1);
  double seconds = -1;
  size_t i, digits = 0;
  int ok;
  if (value == NULL)
    return 0;
  if (size > 0)
    memcpy(value, data, size);
  ok = sapwf_retry_after(value, size, 1700000000, &seconds);
  if (ok)
    CHECK(seconds >= 0 && seconds <= SAPWF_MAX_RETRY_AFTER);
  /* Only digits, at most 9 of them: the exact number of seconds. */
  for (i = 0; i < size && value[i] >= '0' && value[i] <= '9'; i++)
    digits++;
  if (size > 0 && digits == size && size <= 9) {
    double expected = 0;
    for (i = 0; i < size; i++)
      expected = expected * 10 + (value[i] - '0');
    if (expected > SAPWF_MAX_RETRY_AFTER)
      expected = SAPWF_MAX_RETRY_AFTER;
    CHECK(ok && seconds == expected);
  }
  free(value);
  return 0;
}
