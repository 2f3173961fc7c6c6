/* Parsers of response headers: header lines, Retry-After, counts such as X-Total-Count.
 * Whatever a server (or anything between it and us) sends arrives here, so every function
 * takes a pointer and a length, never reads outside them and never trusts a NUL.
 * MIT licence, see LICENSE. */
#include "headers.h"

#include <string.h>
#include <curl/curl.h>

/* Header field names are case-insensitive (RFC 9110 5.1): names are lower-cased once, here,
 * so lookups compare bytes. Only ASCII letters change; the value is kept as sent. */
void sapwf_header_lower_name(char *line, size_t len)
{
  size_t i;
  for (i = 0; i < len && line[i] != ':'; i++) {
    char ch = line[i];
    if (ch >= 'A' && ch <= 'Z')
      line[i] = (char)(ch - 'A' + 'a');
  }
}


static int is_space(char ch)
{
  return ch == ' ' || ch == '\t';
}


/* Finds the next "name: value" line in [*pos, end) and moves *pos past it. Skipped: the
 * status line ("HTTP/..."), the blank last line, lines without a colon or with an empty
 * name, and folded continuation lines (starting with a space or tab: obsolete, RFC 9110
 * 5.5). Returns 1 with field filled, or 0 at the end of the block. */
int sapwf_header_next(const char **pos, const char *end, sapwf_header_field *field)
{
  const char *p = *pos;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol != NULL ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    const char *next = line_end < end ? line_end + 1 : end;
    if (colon != NULL && colon > p && !is_space(*p)
        && !(line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
      const char *value = colon + 1, *value_end = line_end;
      while (value < value_end && is_space(*value))
        value++;
      while (value_end > value && (value_end[-1] == '\r' || is_space(value_end[-1])))
        value_end--;
      field->name = p;
      field->name_len = (size_t)(colon - p);
      field->value = value;
      field->value_len = (size_t)(value_end - value);
      *pos = next;
      return 1;
    }
    p = next;
  }
  *pos = end;
  return 0;
}


/* The last field called `name` (lower case) in a block of header lines whose names were
 * lower-cased, as the last one wins in the headers table the Lua layer gets. 1 or 0. */
int sapwf_header_find(const char *block, size_t len, const char *name, sapwf_header_field *field)
{
  const char *pos = block, *end = block + len;
  size_t name_len = strlen(name);
  sapwf_header_field f;
  int found = 0;
  if (block == NULL)
    return 0;
  while (sapwf_header_next(&pos, end, &f)) {
    if (f.name_len == name_len && memcmp(f.name, name, name_len) == 0) {
      *field = f;
      found = 1;
    }
  }
  return found;
}


/* Whether a line that starts with name and a colon is a field of that name for
 * sapwf_header_next too: a lower-case token (letters, digits, "-", "_", "."), which cannot
 * start with a space, contain a colon or begin a status line ("HTTP/"). */
static int is_plain_name(const char *name, size_t len)
{
  size_t i;
  if (len == 0)
    return 0;
  for (i = 0; i < len; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'
          || ch == '.'))
      return 0;
  }
  return 1;
}


/* The value of the last field called name (name_len bytes) in block: what
 * sapwf_header_find gives, found faster, as it runs on every API call for the request id.
 * For a plain name a line counts when it starts with the name and a colon, so each line
 * costs a memcmp instead of a full split; any other name takes sapwf_header_next. Returns
 * 1 with *value and *value_len set (trimmed as sapwf_header_next trims), or 0. */
int sapwf_header_value(const char *block, size_t len, const char *name, size_t name_len,
                       const char **value, size_t *value_len)
{
  const char *p = block, *end = block + len;
  int found = 0;
  if (block == NULL)
    return 0;
  if (!is_plain_name(name, name_len)) {
    sapwf_header_field f;
    while (sapwf_header_next(&p, end, &f)) {
      if (f.name_len == name_len && memcmp(f.name, name, name_len) == 0) {
        *value = f.value;
        *value_len = f.value_len;
        found = 1;
      }
    }
    return found;
  }
  while (p < end) {                                   /* p: the start of a line */
    const char *eol;
    if ((size_t)(end - p) > name_len && p[name_len] == ':' && memcmp(p, name, name_len) == 0) {
      const char *v = p + name_len + 1, *v_end;
      eol = memchr(v, '\n', (size_t)(end - v));
      v_end = eol != NULL ? eol : end;
      while (v < v_end && is_space(*v))
        v++;
      while (v_end > v && (v_end[-1] == '\r' || is_space(v_end[-1])))
        v_end--;
      *value = v;
      *value_len = (size_t)(v_end - v);
      found = 1;
    } else {
      eol = memchr(p, '\n', (size_t)(end - p));
    }
    if (eol == NULL)
      break;
    p = eol + 1;
  }
  return found;
}


/* Strips spaces and tabs around [*value, *value + *len). */
static void trim(const char **value, size_t *len)
{
  while (*len > 0 && is_space(**value)) {
    (*value)++;
    (*len)--;
  }
  while (*len > 0 && is_space((*value)[*len - 1]))
    (*len)--;
}


/* 1*DIGIT, as a count clamped to `max`. 1, or 0 when anything else is there. */
static int parse_digits(const char *s, size_t len, long long max, long long *out)
{
  long long n = 0;
  size_t i;
  if (len == 0)
    return 0;
  for (i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    if (n <= max)
      n = n * 10 + (s[i] - '0');   /* max * 10 + 9 cannot overflow for the maxima used */
  }
  *out = n > max ? max + 1 : n;
  return 1;
}


/* Retry-After (RFC 9110 10.2.3): delay-seconds (1*DIGIT) or an HTTP-date, which libcurl's
 * curl_getdate reads (it reads the three date formats RFC 9110 names, and more). *seconds
 * is the wait from `now`: 0 for a date in the past, at most SAPWF_MAX_RETRY_AFTER. Returns 0
 * for anything else (a negative or fractional number, text curl_getdate cannot read), so a
 * malformed value is ignored rather than trusted. */
int sapwf_retry_after(const char *value, size_t len, time_t now, double *seconds)
{
  char date[64];
  long long delta;
  time_t when;
  trim(&value, &len);
  if (len == 0)
    return 0;
  if (value[0] >= '0' && value[0] <= '9') {
    if (!parse_digits(value, len, (long long)SAPWF_MAX_RETRY_AFTER, &delta))
      return 0;
    *seconds = delta > (long long)SAPWF_MAX_RETRY_AFTER ? SAPWF_MAX_RETRY_AFTER : (double)delta;
    return 1;
  }
  /* curl_getdate wants a C string: no NUL inside, and a date is short. */
  if (len >= sizeof date || memchr(value, '\0', len) != NULL)
    return 0;
  memcpy(date, value, len);
  date[len] = '\0';
  when = curl_getdate(date, NULL);
  if (when == (time_t)-1)
    return 0;
  *seconds = when <= now ? 0.0 : difftime(when, now);
  if (*seconds > SAPWF_MAX_RETRY_AFTER)
    *seconds = SAPWF_MAX_RETRY_AFTER;
  return 1;
}


/* A count such as X-Total-Count: 1*DIGIT (spaces around are allowed), at most
 * SAPWF_MAX_COUNT. Returns 0 for anything else: a sign, a fraction, an exponent, hex, or a
 * number too large to be exact. */
int sapwf_parse_count(const char *value, size_t len, long long *count)
{
  long long n;
  trim(&value, &len);
  if (!parse_digits(value, len, SAPWF_MAX_COUNT, &n) || n > SAPWF_MAX_COUNT)
    return 0;
  *count = n;
  return 1;
}


/* Whether s may stand in a request header line that we write (a token, a User-Agent): a
 * CR or LF would end the line and start a header of the sender's choosing, a NUL would cut
 * it short, and other control bytes are not field content (RFC 9110 5.5). allow_space:
 * spaces and tabs inside (a User-Agent has them; a Bearer token never does). Bytes from
 * 0x80 are refused: header values are ASCII for every peer sapwf talks to. */
int sapwf_header_text_ok(const char *s, size_t len, int allow_space)
{
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch == ' ' || ch == '\t') && allow_space)
      continue;
    if (ch <= ' ' || ch >= 0x7f)
      return 0;
  }
  return 1;
}
