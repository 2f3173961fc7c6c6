/* libFuzzer target: a block of response header lines, as libcurl hands them to the header
 * callback one line at a time, through what exchange.c does with them: lower-case each
 * name (sapwf_header_lower_name), then split the block into fields (sapwf_header_next) and
 * read Retry-After and X-Total-Count from it. Checks that every field lies inside the block
 * and is well formed, and that sapwf_header_value's fast lookup agrees with the split.
 * MIT licence, see LICENSE. */
#include "headers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static int is_space(char ch)
{
  return ch == ' ' || ch == '\t';
}

/* sapwf_header_value against the field sapwf_header_next's split finds last. */
static void check_same(const char *block, size_t size, const char *name, size_t name_len)
{
  const char *pos = block, *end = block + size, *value = NULL;
  size_t value_len = 0;
  sapwf_header_field f, last;
  int found = 0, fast = sapwf_header_value(block, size, name, name_len, &value, &value_len);
  while (sapwf_header_next(&pos, end, &f)) {
    if (f.name_len == name_len && memcmp(f.name, name, name_len) == 0) {
      last = f;
      found = 1;
    }
  }
  CHECK(fast == found);
  if (found)
    CHECK(value == last.value && value_len == last.value_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy: ASan catches a read one byte past the block. */
  char *block = malloc(size > 0 ? size : 1);
  const char *pos, *end;
  size_t start = 0, i;
  sapwf_header_field f;
  double seconds;
  long long count;
  if (block == NULL)
    return 0;
  if (size > 0)
    memcpy(block, data, size);
  /* Line by line, as collect_header receives them. */
  for (i = 0; i <= size; i++) {
    if (i == size || block[i] == '\n') {
      size_t line_end = i < size ? i + 1 : size;
      if (line_end > start)
        sapwf_header_lower_name(block + start, line_end - start);
      start = line_end;
    }
  }
  pos = block;
  end = block + size;
  while (sapwf_header_next(&pos, end, &f)) {
    CHECK(f.name >= block && f.name_len > 0 && f.name + f.name_len <= end);
    CHECK(f.value >= f.name + f.name_len && f.value + f.value_len <= end);
    CHECK(pos > f.name && pos <= end);
    CHECK(memchr(f.name, ':', f.name_len) == NULL);
    CHECK(memchr(f.name, '\n', f.name_len) == NULL);
    CHECK(memchr(f.value, '\n', f.value_len) == NULL);
    CHECK(!is_space(f.name[0]));
    for (i = 0; i < f.name_len; i++)
      CHECK(!(f.name[i] >= 'A' && f.name[i] <= 'Z'));
    if (f.value_len > 0) {
      CHECK(!is_space(f.value[0]));
      CHECK(!is_space(f.value[f.value_len - 1]) && f.value[f.value_len - 1] != '\r');
    }
  }
  CHECK(pos == end);
  /* The fast lookup finds what the full split finds, for plain names and others alike:
   * some fixed ones, and each field's own name. */
  {
    static const char *const names[] = {"x-vcap-request-id", "content-type", "retry-after",
                                        "location", "a", "x y", "http/1.1 200 ok", NULL};
    const char *const *n;
    for (n = names; *n != NULL; n++)
      check_same(block, size, *n, strlen(*n));
    pos = block;
    while (sapwf_header_next(&pos, end, &f))
      check_same(block, size, f.name, f.name_len);
  }
  if (sapwf_header_find(block, size, "retry-after", &f)
      && sapwf_retry_after(f.value, f.value_len, 1700000000, &seconds))
    CHECK(seconds >= 0 && seconds <= SAPWF_MAX_RETRY_AFTER);
  if (sapwf_header_find(block, size, "x-total-count", &f)
      && sapwf_parse_count(f.value, f.value_len, &count))
    CHECK(count >= 0 && count <= SAPWF_MAX_COUNT);
  free(block);
  return 0;
}
