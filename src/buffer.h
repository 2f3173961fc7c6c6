/* Byte buffers and secrets: the bottom of sapwf.core, plain C without Lua or libcurl.
 * MIT licence, see LICENSE. */
#ifndef SAPWF_BUFFER_H
#define SAPWF_BUFFER_H

#include <stddef.h>

/* Allocations up to this size are kept between API answers (sapwf_buffer_reuse). */
#define SAPWF_BUFFER_KEEP (64 * 1024)

/* A growing byte buffer owned by the client, never by a C stack frame: if Lua raises
 * while one holds data, close or __gc still frees it. */
typedef struct sapwf_buffer {
  char *data;
  size_t len;
  size_t cap;
} sapwf_buffer;

/* A text no error may quote back: the secret, the Basic credentials, a token. */
typedef struct sapwf_text {
  const char *data;                /* NULL or len 0: none */
  size_t len;
} sapwf_text;

void sapwf_wipe(void *p, size_t n);
void sapwf_free_secret(char **p, size_t n);
char *sapwf_basic_credentials(const char *id, size_t id_len, const char *secret,
                              size_t secret_len, size_t *len);
size_t sapwf_secret_at(const char *s, size_t left, const sapwf_text *secrets, int n);
void sapwf_buffer_free(sapwf_buffer *b);
void sapwf_buffer_reuse(sapwf_buffer *b);

#endif /* SAPWF_BUFFER_H */
