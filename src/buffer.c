/* Byte buffers and secrets: wiping memory that held a secret or a token before it is
 * freed, and the buffers that collect answers. MIT licence, see LICENSE. */
#include "buffer.h"

#include <stdlib.h>
#include <string.h>

/* memset through a volatile pointer: the compiler cannot prove the call useless and
 * drop it, as it may for a plain memset just before free (explicit_bzero is not C99). */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;


void sapwf_wipe(void *p, size_t n)
{
  if (p != NULL && n > 0)
    wipe_memset(p, 0, n);
}


/* Wipes and frees a malloc'ed secret and clears the pointer. */
void sapwf_free_secret(char **p, size_t n)
{
  if (*p != NULL) {
    sapwf_wipe(*p, n);
    free(*p);
    *p = NULL;
  }
}


/* The base64 of id ":" secret, what libcurl sends as HTTP Basic credentials, as a
 * malloc'ed string (to be wiped: sapwf_free_secret) with its length in *len; NULL when out
 * of memory. Made without a copy of id ":" secret to wipe. Never sent: libcurl makes the
 * header it sends (CURLOPT_USERNAME, CURLOPT_PASSWORD); this is only to recognise those
 * credentials when a server quotes them back (client:redact), and libcurl has no public
 * base64 to make it with. */
char *sapwf_basic_credentials(const char *id, size_t id_len, const char *secret,
                              size_t secret_len, size_t *len)
{
  static const char digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = id_len + 1 + secret_len, i, o = 0;
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (out == NULL)
    return NULL;
  for (i = 0; i < n; i += 3) {
    unsigned long group = 0;
    size_t k;
    for (k = 0; k < 3; k++) {
      size_t at = i + k;
      unsigned char byte = at < id_len ? (unsigned char)id[at]
        : at == id_len ? (unsigned char)':'
        : at < n ? (unsigned char)secret[at - id_len - 1] : 0;
      group = group << 8 | byte;
    }
    out[o++] = digits[group >> 18 & 63];
    out[o++] = digits[group >> 12 & 63];
    out[o++] = i + 1 < n ? digits[group >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? digits[group & 63] : '=';
  }
  out[o] = '\0';
  *len = o;
  return out;
}


/* The length of the longest of the n secrets that s (left bytes) starts with, or 0: the
 * scan of sapwf_push_redacted (functions.c). */
size_t sapwf_secret_at(const char *s, size_t left, const sapwf_text *secrets, int n)
{
  size_t longest = 0;
  int i;
  for (i = 0; i < n; i++) {
    size_t len = secrets[i].len;
    if (secrets[i].data != NULL && len > longest && len <= left
        && s[0] == secrets[i].data[0] && memcmp(s, secrets[i].data, len) == 0)
      longest = len;
  }
  return longest;
}


/* Wipes the whole allocation: a buffer may have held a token answer. */
void sapwf_buffer_free(sapwf_buffer *b)
{
  if (b->data != NULL) {
    sapwf_wipe(b->data, b->cap);
    free(b->data);
  }
  b->data = NULL;
  b->len = b->cap = 0;
}


/* Readies a buffer that held an API answer (never a token: token.c frees those) for the
 * next one: a small allocation is kept, so a loop of calls does not allocate; a large one
 * is given back. */
void sapwf_buffer_reuse(sapwf_buffer *b)
{
  if (b->cap > SAPWF_BUFFER_KEEP)
    sapwf_buffer_free(b);
  else
    b->len = 0;
}
