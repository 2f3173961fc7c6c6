/* libFuzzer target: counts such as X-Total-Count (sapwf_parse_count). Checks that only
 * 1*DIGIT with spaces around is taken, and that the number read is the number written.
 * MIT licence, see LICENSE. */
#include "headers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *value = malloc(size > 0 ? size : 1);
  long long count = -1;
  size_t first = 0, last = size, i;
  if (value == NULL)
    return 0;
  if (size > 0)
    memcpy(value, data, size);
  if (sapwf_parse_count(value, size, &count)) {
    char text[32];
    size_t n;
    CHECK(count >= 0 && count <= SAPWF_MAX_COUNT);
    while (first < last && (value[first] == ' ' || value[first] == '\t'))
      first++;
    while (last > first && (value[last - 1] == ' ' || value[last - 1] == '\t'))
      last--;
    CHECK(last > first);
    for (i = first; i < last; i++)
      CHECK(value[i] >= '0' && value[i] <= '9');
    while (last - first > 1 && value[first] == '0')  /* leading zeros */
      first++;
    n = (size_t)snprintf(text, sizeof text, "%lld", count);
    CHECK(n == last - first && memcmp(text, value + first, n) == 0);
  }
  free(value);
  return 0;
}
