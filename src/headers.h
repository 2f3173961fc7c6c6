/* Parsers of response headers: the untrusted input the C code reads itself (token answers are
 * decoded by lua-cjson). Plain C without Lua, so the fuzz targets in fuzz/ can link
 * headers.c alone. MIT licence, see LICENSE. */
#ifndef SAPWF_HEADERS_H
#define SAPWF_HEADERS_H

#include <stddef.h>
#include <time.h>

/* One "name: value" field of a block of header lines. Both point into the block. */
typedef struct sapwf_header_field {
  const char *name;
  size_t name_len;
  const char *value;               /* without surrounding spaces, tabs and the CR */
  size_t value_len;
} sapwf_header_field;

/* The largest count sapwf_parse_count accepts: 2^53, exact as a double and a Lua number. */
#define SAPWF_MAX_COUNT 9007199254740992LL

/* The longest wait a Retry-After value gives, in seconds (a year): more is clamped. */
#define SAPWF_MAX_RETRY_AFTER 31536000.0

void sapwf_header_lower_name(char *line, size_t len);
int sapwf_header_next(const char **pos, const char *end, sapwf_header_field *field);
int sapwf_header_find(const char *block, size_t len, const char *name, sapwf_header_field *field);
int sapwf_header_value(const char *block, size_t len, const char *name, size_t name_len,
                       const char **value, size_t *value_len);
int sapwf_retry_after(const char *value, size_t len, time_t now, double *seconds);
int sapwf_parse_count(const char *value, size_t len, long long *count);
int sapwf_header_text_ok(const char *s, size_t len, int allow_space);

#endif /* SAPWF_HEADERS_H */
