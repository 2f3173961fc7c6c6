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
