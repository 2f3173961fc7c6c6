/* The Lua side of sapwf.core: the client's state and the functions of the layers that
 * talk to Lua. Everything is hidden by -fvisibility=hidden; only luaopen_sapwf_core is
 * exported.
 *
 * The layers, each calling only the ones below it (docs/DESIGN.md draws them;
 * scripts/check-layers.sh checks the objects in CI):
 *   core.c                        gathers: the module table
 *   batch.c                       the Batch userdata (libcurl multi)
 *   client.c                      the Client userdata and its methods
 *   token.c options.c             the token: fetch, cache, ensure, renew; new's options
 *   lua_request.c functions.c     request arguments in, answers and errors out; helpers
 *   share.c files.c               per-state share; files (identity, kind, link, new,
 *                                 renamed, locked)
 *   signal.c                      Ctrl-C, SIGTERM, SIGHUP as a flag, and the sleep it ends
 *   exchange.c                    one libcurl exchange (no Lua: exchange.h)
 *   buffer.c clock.c headers.c path.c   plain C
 * MIT licence, see LICENSE. */
#ifndef SAPWF_H
#define SAPWF_H

#include "compat.h"
#include "buffer.h"
#include "clock.h"
#include "exchange.h"
#include "headers.h"
#include "path.h"

#include <stddef.h>
#include <curl/curl.h>

#define SAPWF_VERSION "0.1.0"
#define SAPWF_CLIENT_MT "sapwf.core.Client"
/* The header block of an answer (lua_request.c pushes it, functions.c reads it). */
#define SAPWF_HEADERS_MT "sapwf.core.Headers"

/* The method, path and body of an API request, as sapwf_check_request read them. */
typedef struct sapwf_request {
  int method;
  const char *path;
  size_t path_len;
  const char *body;                /* NULL: no body */
  size_t body_len;
  const char *accept;              /* NULL: application/json */
  const char *to_file;             /* NULL: the body comes back as a string */
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
  struct curl_slist *extra_headers;  /* the `headers` option's lines, in every API request;
                                        wiped when freed (a value may be an API key) */
  char *api_url;
  size_t api_url_len;
  char *secret;                    /* malloc'ed copies, wiped before free */
  size_t secret_len;
  char *basic;                     /* base64 of client_id ":" secret, as libcurl sends them:
                                      only to take them out of a server's text (redact) */
  size_t basic_len;
  char *key_pem;
  size_t key_len;
  char *token;                     /* cached access token, wiped before free */
  size_t token_len;
  char *prev_token;                /* the one before it: answers to requests that carried it
                                      may still come and quote it (client:redact) */
  size_t prev_token_len;
  char *scope;
  double token_expiry;             /* monotonic seconds */
  double token_lifetime;           /* seconds it had left when cached */
  double refresh_after;            /* a failed refresh is not tried again before this */
  unsigned long refused_gen;       /* the token the API refused although fetched anew */
  double refused_until;            /* ... and until when a 401 to it renews nothing */
  unsigned long token_gen;         /* bumped by sapwf_token_drop, so by every change of the
                                      token: tells which token a request carried */
  struct curl_slist *api_headers[2];  /* request headers with the token, without and with a
                                         body; made on first use, freed by sapwf_token_drop */
  double token_margin;
  int auto_token;                  /* 0: only set_token and token(true) get a token, and
                                      renew renews nothing (see token.c) */
  sapwf_exchange x;                /* what the two handles collect; timeout, deadline */
  int closed;
  int busy;                        /* a call under way on this client or one of its
                                      batches (see client.c): others are refused */
  int close_pending;               /* closed during a call: freed when the last one ends */
  int batches;                     /* batches made on it and not yet released: while there
                                      are, a close keeps what redact takes out (client.c) */
} sapwf_client;

/* What sapwf.core.new takes, as options.c read it. The strings stay on the Lua stack. */
typedef struct sapwf_options {
  const char *api_url, *token_url, *client_id, *client_secret, *cert, *key;
  const char *cafile, *proxy, *user_agent;
  size_t api_url_len, client_id_len, secret_len, cert_len, key_len;
  double timeout, connect_timeout, token_margin;
  size_t max_response;
  int verify;
  int auto_token;
  int headers_idx;                 /* stack index of the headers table (0: none) */
} sapwf_options;

/* core.c: the one exported symbol */
__attribute__((visibility("default"))) int luaopen_sapwf_core(lua_State *L);

/* signal.c */
int sapwf_core_catch_sigint(lua_State *L);
int sapwf_core_sigint_caught(lua_State *L);
int sapwf_signal_caught(void);
int sapwf_sleep_unless_caught(double seconds);

/* files.c */
int sapwf_core_file_id(lua_State *L);
int sapwf_core_temp_file(lua_State *L);
int sapwf_core_rename_noreplace(lua_State *L);
int sapwf_core_file_kind(lua_State *L);
int sapwf_core_is_link(lua_State *L);
int sapwf_core_real_path(lua_State *L);
int sapwf_core_lock_file(lua_State *L);
int sapwf_core_mode_like(lua_State *L);

/* share.c */
sapwf_share *sapwf_share_acquire(lua_State *L);
sapwf_share *sapwf_share_retain(sapwf_share *s);
CURLSH *sapwf_share_handle(const sapwf_share *s);
void sapwf_share_release(lua_State *L, sapwf_share *s);

/* lua_request.c */
void sapwf_check_request(lua_State *L, int arg, sapwf_request *r);
void sapwf_check_output(lua_State *L, int arg, sapwf_request *r);
int sapwf_push_error(lua_State *L, const sapwf_error *e);
int sapwf_push_answer(lua_State *L, long status, sapwf_response *r);
void sapwf_headers_open(lua_State *L);

/* functions.c */
int sapwf_core_escape(lua_State *L);
int sapwf_core_sleep(lua_State *L);
int sapwf_core_monotonic(lua_State *L);
int sapwf_core_retry_after(lua_State *L);
int sapwf_core_parse_count(lua_State *L);
int sapwf_core_path_problem(lua_State *L);
int sapwf_core_fingerprint(lua_State *L);
int sapwf_core_header(lua_State *L);
int sapwf_core_headers(lua_State *L);
int sapwf_core_header_text(lua_State *L);
int sapwf_core_redact(lua_State *L);
void sapwf_push_redacted(lua_State *L, const char *s, size_t len, const sapwf_text *secrets,
                         int n);

/* token.c */
int sapwf_token_ensure(lua_State *L, sapwf_client *c, int decode_idx, int force, sapwf_error *e);
int sapwf_token_renew(lua_State *L, sapwf_client *c, int decode_idx, unsigned long gen,
                      int replayed, sapwf_error *e);
void sapwf_token_set(lua_State *L, sapwf_client *c, const char *token, size_t token_len,
                     const char *scope, size_t scope_len, double left);
void sapwf_token_drop(sapwf_client *c);
struct curl_slist *sapwf_token_headers(sapwf_client *c, int has_body);

/* options.c */
void sapwf_read_options(lua_State *L, sapwf_options *o);
CURLcode sapwf_apply_options(CURL *easy, const sapwf_options *o);
CURLcode sapwf_setup_token_handle(sapwf_client *c, const sapwf_options *o);
struct curl_slist *sapwf_extra_headers(lua_State *L, const sapwf_options *o, CURLcode *rc);

/* client.c */
void sapwf_client_open(lua_State *L);
int sapwf_client_new(lua_State *L);
sapwf_client *sapwf_check_open(lua_State *L, int idx);
void sapwf_client_refuse_busy(lua_State *L, const sapwf_client *c);
void sapwf_push_held(lua_State *L, lua_CFunction fn, void *ctx);
int sapwf_client_call(lua_State *L, sapwf_client *c);
void sapwf_client_batch_released(sapwf_client *c);
int sapwf_client_secret_count(const sapwf_client *c);
int sapwf_client_secrets(const sapwf_client *c, sapwf_text *secrets);

/* batch.c */
void sapwf_batch_open(lua_State *L);

#endif /* SAPWF_H */
