/* Declarations shared by the C files of sapwf.core. Everything here is hidden by
 * -fvisibility=hidden; only luaopen_sapwf_core is exported. MIT licence, see LICENSE. */
#ifndef SAPWF_H
#define SAPWF_H

#include "compat.h"
#include "headers.h"
#include "path.h"

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

/* Allocations up to this size are kept between API answers (sapwf_buffer_reuse). */
#define SAPWF_BUFFER_KEEP (64 * 1024)

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

/* The guard against libcurl re-sending a POST by itself (see transfer.c). */
typedef struct sapwf_upload {
  int refuse_resend;      /* POST: never send the request a second time */
  int resend_refused;     /* set when libcurl asked to rewind or to send again */
  int prereq_calls;       /* requests libcurl was about to send during this perform */
} sapwf_upload;

/* Request methods, in the order client:request names them. */
enum sapwf_method { SAPWF_METHOD_GET, SAPWF_METHOD_POST, SAPWF_METHOD_PUT, SAPWF_METHOD_PATCH,
                    SAPWF_METHOD_DELETE };

/* The method, path and body of an API request, as sapwf_check_request read them. */
typedef struct sapwf_request {
  int method;
  const char *path;
  size_t path_len;
  const char *body;                /* NULL: no body */
  size_t body_len;
} sapwf_request;

/* The libcurl share handle of one Lua state (share.c): connections, DNS answers and TLS
 * sessions of the API handles of every client and batch in that state. */
typedef struct sapwf_share sapwf_share;

typedef struct sapwf_client {
  CURL *token_easy;                /* the only handle with the secret or the client cert */
  CURL *api_easy;                  /* only ever a Bearer header */
  sapwf_share *share;              /* API connections shared with the state's other clients */
  long keep_connections;           /* idle API connections kept (batch.c); 0: libcurl's 5 */
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
  double token_lifetime;           /* seconds it had left when cached */
  double refresh_after;            /* a failed refresh is not tried again before this */
  unsigned long refused_gen;       /* the token the API refused although fetched anew */
  double refused_until;            /* ... and until when a 401 to it renews nothing */
  double timeout;                  /* seconds one request may take, exchanges included */
  double deadline;                 /* while a request runs: when its time is up (0: none) */
  unsigned long token_gen;         /* bumped by sapwf_token_drop, so by every change of the
                                      token: tells a batch which token a request carried */
  struct curl_slist *api_headers[2];  /* request headers with the token, without and with a
                                         body; made on first use, freed by sapwf_token_drop */
  double token_margin;
  int auto_token;                  /* 0: only set_token and token(true) get a token, and a
                                      401 is returned, not replayed (see token.c) */
  sapwf_response response;
  sapwf_upload upload;
  char errbuf[CURL_ERROR_SIZE];
  int closed;
  int busy;                        /* calls under way on this client (see client.c) */
  int close_pending;               /* closed during a call: freed when the last one ends */
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
  double retry_after;              /* seconds the token endpoint's Retry-After asks; -1: none */
  int sent;
} sapwf_error;

/* core.c: the one exported symbol */
__attribute__((visibility("default"))) int luaopen_sapwf_core(lua_State *L);

/* signal.c */
int sapwf_core_catch_sigint(lua_State *L);
int sapwf_core_sigint_caught(lua_State *L);

/* fileid.c */
int sapwf_core_file_id(lua_State *L);

/* clock.c */
double sapwf_now(void);
int sapwf_core_sleep(lua_State *L);
int sapwf_core_monotonic(lua_State *L);

/* parse.c */
int sapwf_core_retry_after(lua_State *L);
int sapwf_core_parse_count(lua_State *L);
int sapwf_core_path_problem(lua_State *L);
int sapwf_core_header(lua_State *L);
int sapwf_core_headers(lua_State *L);

/* json_walk.c: the fast paths of lua/sapwf/json.lua's walks */
int sapwf_core_json_plain(lua_State *L);
int sapwf_core_json_fix(lua_State *L);

/* share.c */
sapwf_share *sapwf_share_acquire(lua_State *L);
sapwf_share *sapwf_share_retain(sapwf_share *s);
CURLSH *sapwf_share_handle(const sapwf_share *s);
void sapwf_share_release(lua_State *L, sapwf_share *s);

/* batch.c */
void sapwf_batch_open(lua_State *L);
int sapwf_batch_new(lua_State *L);

/* client.c */
void sapwf_client_open(lua_State *L);
int sapwf_client_new(lua_State *L);
sapwf_client *sapwf_check_open(lua_State *L, int idx);
void sapwf_client_hold(sapwf_client *c);
int sapwf_client_unhold(lua_State *L, sapwf_client *c);
void sapwf_wipe(void *p, size_t n);
void sapwf_free_secret(char **p, size_t n);

/* transfer.c */
CURLcode sapwf_easy_callbacks(CURL *easy, sapwf_response *r, sapwf_upload *u, char *errbuf);
CURLcode sapwf_easy_setup(sapwf_client *c, CURL *easy);
void sapwf_exchange_reset(sapwf_response *r, sapwf_upload *u, char *errbuf, int refuse_resend);
CURLcode sapwf_perform(sapwf_client *c, CURL *easy, int refuse_resend, long *status);
void sapwf_buffer_free(sapwf_buffer *b);
void sapwf_buffer_reuse(sapwf_buffer *b);
struct curl_slist *sapwf_request_headers(const sapwf_client *c, int has_body);
void sapwf_free_headers(struct curl_slist *list);
CURLcode sapwf_set_method(CURL *easy, int method, const char *body, size_t body_len);
void sapwf_check_request(lua_State *L, int arg, sapwf_request *r);
void sapwf_push_header_block(lua_State *L, const sapwf_buffer *b);
void sapwf_error_init(sapwf_error *e, const char *kind, const char *phase);
void sapwf_error_from_curl(sapwf_client *c, CURL *easy, CURLcode rc, const char *phase,
                           sapwf_error *e);
void sapwf_error_from_exchange(CURL *easy, CURLcode rc, const sapwf_response *r,
                               const sapwf_upload *u, const char *errbuf, const char *phase,
                               sapwf_error *e);
int sapwf_push_error(lua_State *L, const sapwf_error *e);
int sapwf_client_request(lua_State *L);

/* token.c */
int sapwf_token_ensure(lua_State *L, sapwf_client *c, int decode_idx, int force, sapwf_error *e);
void sapwf_token_drop(sapwf_client *c);
int sapwf_token_may_renew(const sapwf_client *c);
void sapwf_token_refused(sapwf_client *c);
int sapwf_client_token(lua_State *L);
int sapwf_client_set_token(lua_State *L);

#endif /* SAPWF_H */
