/* Declarations shared by the C files of sapwf.core. Everything here is hidden by
 * -fvisibility=hidden; only luaopen_sapwf_core is exported. MIT licence, see LICENSE. */
#ifndef SAPWF_H
#define SAPWF_H

#include "compat.h"

#include <stddef.h>
#include <curl/curl.h>

/* CURLOPT_PROTOCOLS_STR (7.85) and CURLOPT_PREREQFUNCTION (7.80) are needed. */
#if LIBCURL_VERSION_NUM < 0x075500
#error "sapwf.core needs libcurl 7.85.0 or newer"
#endif

#define SAPWF_VERSION "0.1.0"
#define SAPWF_CLIENT_MT "sapwf.core.Client"

/* Chains curl_easy_setopt calls: once one fails, the rest are skipped and rc keeps the
 * first failure, so a setup function checks every option with one test at its end. */
#define SAPWF_SETOPT(rc, easy, opt, val) \
  ((rc) = (rc) != CURLE_OK ? (rc) : curl_easy_setopt((easy), (opt), (val)))

/* A growing byte buffer owned by the client, never by a C stack frame: if Lua raises
 * while one holds data, close or __gc still frees it. */
typedef struct sapwf_buffer {
  char *data;
  size_t len;
  size_t cap;
} sapwf_buffer;

/* What one exchange collects. The libcurl callbacks see only this struct. */
typedef struct sapwf_response {
  sapwf_buffer body;
  sapwf_buffer headers;   /* raw header lines of the last response, names lower-cased */
  size_t max;             /* max_response: cap of body and of headers */
  int too_large;          /* the write or header callback refused more data */
  int no_memory;          /* realloc failed in a callback */
} sapwf_response;

/* The request body as the read callback hands it out, and the guard against libcurl
 * re-sending a POST by itself (see transfer.c). */
typedef struct sapwf_upload {
  const char *data;
  size_t len;
  size_t pos;
  int refuse_resend;      /* POST: never send the request a second time */
  int resend_refused;     /* set when libcurl asked to rewind or to send again */
  int prereq_calls;       /* requests libcurl was about to send during this perform */
} sapwf_upload;

typedef struct sapwf_client {
  CURL *token_easy;                /* the only handle with the secret or the client cert */
  CURL *api_easy;                  /* only ever a Bearer header */
  struct curl_slist *token_headers;
  char *api_url;
  size_t api_url_len;
  char *secret;                    /* malloc'ed copies, wiped before free */
  size_t secret_len;
  char *key_pem;
  size_t key_len;
  char *token;                     /* cached access token, wiped before free */
  size_t token_len;
  char *scope;
  double token_expiry;             /* monotonic seconds */
  double token_margin;
  sapwf_response response;
  sapwf_upload upload;
  char errbuf[CURL_ERROR_SIZE];
  int closed;
} sapwf_client;

/* An operational failure, self-contained (no pointers into the Lua stack) so it can be
 * filled anywhere and pushed by the one funnel, sapwf_push_error. */
typedef struct sapwf_error {
  const char *kind;                /* network timeout tls auth server decode */
  const char *phase;               /* token request */
  char message[CURL_ERROR_SIZE + 160];
  char code[128];                  /* token endpoint "error", empty if none */
  long curl_code;                  /* -1 when libcurl did not fail */
  long status;                     /* 0 when no HTTP answer */
  int sent;
} sapwf_error;

/* core.c: the one exported symbol */
__attribute__((visibility("default"))) int luaopen_sapwf_core(lua_State *L);

/* client.c */
void sapwf_client_open(lua_State *L);
int sapwf_client_new(lua_State *L);
sapwf_client *sapwf_check_open(lua_State *L, int idx);
void sapwf_wipe(void *p, size_t n);
void sapwf_free_secret(char **p, size_t n);

/* transfer.c */
CURLcode sapwf_easy_setup(sapwf_client *c, CURL *easy);
CURLcode sapwf_perform(sapwf_client *c, CURL *easy, int refuse_resend, long *status);
void sapwf_buffer_free(sapwf_buffer *b);
void sapwf_error_init(sapwf_error *e, const char *kind, const char *phase);
void sapwf_error_from_curl(sapwf_client *c, CURL *easy, CURLcode rc, const char *phase,
                           sapwf_error *e);
int sapwf_push_error(lua_State *L, const sapwf_error *e);
int sapwf_client_request(lua_State *L);

/* token.c */
int sapwf_token_ensure(lua_State *L, sapwf_client *c, int decode_idx, int force, sapwf_error *e);
void sapwf_token_drop(sapwf_client *c);
int sapwf_client_token(lua_State *L);

#endif /* SAPWF_H */
