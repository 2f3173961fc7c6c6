/* The client-credentials token: fetch, cache, refresh, renew after a 401, and the request
 * headers that carry it. The Lua methods on top (client:token, client:set_token,
 * client:renew) are in client.c. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The largest token answer taken, whatever max_response says (fetch). */
#define TOKEN_ANSWER_MAX ((size_t)1024 * 1024)

/* A token with less than this many seconds left is not used while its refresh fails:
 * the call would reach the API after it expired. */
#define TOKEN_FLOOR 1.0
/* After a refresh failed while the cached token was still usable, the next try waits this
 * long (seconds). */
#define REFRESH_RETRY 5.0

/* How long a 401 to a token that was itself fetched because of a 401 renews nothing. */
#define RENEW_HOLD 1.0

void sapwf_token_drop(sapwf_client *c)
{
  /* Kept as the one before, for redaction only (a request in flight may have carried it);
   * the one before that is wiped now. */
  sapwf_free_secret(&c->prev_token, c->prev_token_len);
  c->prev_token = c->token;
  c->prev_token_len = c->token_len;
  c->token = NULL;
  c->token_len = 0;
  free(c->scope);
  c->scope = NULL;
  c->token_expiry = 0;
  c->token_gen++;
  sapwf_free_headers(c->api_headers[0]);             /* they carry the token */
  sapwf_free_headers(c->api_headers[1]);
  c->api_headers[0] = c->api_headers[1] = NULL;
}


/* The header lists with the cached token (without and with a body), made on first use
 * and kept until the token changes; NULL when out of memory. */
struct curl_slist *sapwf_token_headers(sapwf_client *c, int has_body)
{
  struct curl_slist **h = &c->api_headers[has_body != 0];
  if (*h == NULL)
    *h = sapwf_request_headers(c->token, c->token_len, has_body, NULL, c->extra_headers);
  return *h;
}


/* Copies the string field `name` of the table at idx into dst, or leaves dst empty, also
 * for a string that does not fit: cut short, it could end in the start of a secret it
 * quotes, which the Lua layer's errors then no longer recognise to redact. The stack
 * remains unchanged. */
static void copy_field(lua_State *L, int idx, const char *name, char *dst, size_t size)
{
  dst[0] = '\0';
  if (lua_type(L, idx) != LUA_TTABLE)
    return;
  lua_getfield(L, idx, name);
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    if (len < size)
      snprintf(dst, size, "%s", text);
  }
  lua_pop(L, 1);
}


/* Pushes cjson.safe.decode(answer), or nil if the answer is not JSON. It runs after
 * curl_easy_perform returned, under lua_pcall; only a memory error is raised again. */
static void push_decoded(lua_State *L, sapwf_client *c, int decode_idx)
{
  const sapwf_buffer *b = &c->x.response.body;
  int rc;
  lua_pushvalue(L, decode_idx);                       /* decode */
  lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);  /* decode, text */
  rc = lua_pcall(L, 1, 1, 0);                         /* answer-or-error */
  if (rc == LUA_ERRMEM)
    lua_error(L);
  if (rc != LUA_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);                                   /* nil */
  }
}


/* The token endpoint answered, but not 200. The decoded answer (or nil) is on top;
 * XSUAA puts an OAuth error code in `error` and a text in `error_description`. */
static void refused(lua_State *L, long status, sapwf_error *e)
{
  int auth = status == 400 || status == 401 || status == 403;
  /* No token endpoint at that URL: a token_url without /oauth/token, or a wrong uaa.url.
   * The configuration is wrong, not the server (errors.lua adds the hint). */
  int nowhere = status == 404 || status == 405;
  sapwf_error_init(e, auth ? "auth" : nowhere ? "config" : "server", "token");
  e->status = status;
  copy_field(L, -1, "error", e->code, sizeof e->code);
  copy_field(L, -1, "error_description", e->message, sizeof e->message);
  if (e->message[0] == '\0')
    snprintf(e->message, sizeof e->message, auth
             ? "token endpoint refused the client credentials (HTTP %ld)"
             : nowhere ? "no token endpoint at the token URL (HTTP %ld)"
             : "token endpoint answered HTTP %ld", status);
}


static int decode_error(sapwf_error *e, const char *message)
{
  sapwf_error_init(e, "decode", "token");
  e->status = 200;
  snprintf(e->message, sizeof e->message, "%s", message);
  return 0;
}


/* Replaces the cached token (wiped) with copies of token and scope (NULL: none), valid for
 * `left` seconds. Raises only when out of memory, with nothing changed. */
void sapwf_token_set(lua_State *L, sapwf_client *c, const char *token, size_t token_len,
                        const char *scope, size_t scope_len, double left)
{
  char *token_copy = malloc(token_len + 1), *scope_copy = NULL;
  if (scope != NULL)
    scope_copy = malloc(scope_len + 1);
  if (token_copy == NULL || (scope != NULL && scope_copy == NULL)) {
    free(token_copy);
    free(scope_copy);
    luaL_error(L, "not enough memory");
    return;
  }
  memcpy(token_copy, token, token_len + 1);
  if (scope != NULL)
    memcpy(scope_copy, scope, scope_len + 1);
  sapwf_token_drop(c);
  c->token = token_copy;
  c->token_len = token_len;
  c->scope = scope_copy;
  c->token_expiry = sapwf_now() + left;                     /* HUGE_VAL stays HUGE_VAL */
  c->token_lifetime = left;
  c->refresh_after = 0;
}


/* Whether the value at idx is JSON null as lua-cjson decodes it (a NULL light userdata). */
static int is_json_null(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}


/* Caches access_token, expiry and scope from the decoded 200 answer on top. A missing
 * expires_in is allowed (RFC 6749 5.1 only recommends it), and so is null: the token is
 * then kept until the API answers 401. A number in a string ("3599", as some servers send
 * it) is read as the number. Returns 0 with e filled when the answer is unusable. */
static int store(lua_State *L, sapwf_client *c, sapwf_error *e)
{
  const char *token, *scope = NULL;
  size_t token_len, scope_len = 0;
  double expires_in = HUGE_VAL;
  if (lua_type(L, -1) != LUA_TTABLE)
    return decode_error(e, "token answer is not a JSON object");
  lua_getfield(L, -1, "access_token");                /* answer, token */
  token = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &token_len) : NULL;
  if (token == NULL || token_len == 0)
    return decode_error(e, "token answer has no access_token");
  /* It goes into every "Authorization: Bearer" line: a CR or LF would add headers of the
   * token server's choosing, a NUL would cut it. Refused here, before anything is cached
   * or sent; the message never quotes it. */
  if (!sapwf_header_text_ok(token, token_len, 0))
    return decode_error(e, "token answer's access_token is not visible ASCII (a header "
                        "value cannot carry it)");
  lua_getfield(L, -2, "expires_in");                  /* answer, token, expires_in */
  if (!lua_isnil(L, -1) && !is_json_null(L, -1)) {
    expires_in = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : -1;
    if (!(expires_in >= 0))
      return decode_error(e, "token answer has a bad expires_in");
  }
  lua_getfield(L, -3, "scope");                       /* answer, token, expires_in, scope */
  if (lua_type(L, -1) == LUA_TSTRING)
    scope = lua_tolstring(L, -1, &scope_len);
  sapwf_token_set(L, c, token, token_len, scope, scope_len, expires_in);
  return 1;
}


/* POSTs to the token URL and caches the answer. Returns 0 with e filled on failure, and
 * the token cached before (if any) left as it was; the stack remains unchanged. A token
 * error means the API request itself was not sent, so sent = false. Token requests may be
 * re-sent by libcurl: a second token is harmless. */
static int fetch(lua_State *L, sapwf_client *c, int decode_idx, sapwf_error *e)
{
  int top = lua_gettop(L), ok;
  long status;
  CURLcode rc;
  size_t max = c->x.response.max;
  /* max_response is for the API's answers: one set for small JSON answers must not refuse
   * the token (an answer with many scopes is several KB), which every call needs. */
  if (c->x.response.max < TOKEN_ANSWER_MAX)
    c->x.response.max = TOKEN_ANSWER_MAX;
  /* A token fetch changes nothing: a caught signal may end it, as a GET (exchange.c). */
  c->x.response.reading = 1;
  rc = sapwf_exchange_perform(&c->x, c->token_easy, 0, &status);
  if (rc != CURLE_OK) {
    sapwf_error_from_exchange(c->token_easy, rc, &c->x, "token", e);
    if (c->x.response.too_large)          /* the cap that applied, not max_response's */
      snprintf(e->message, sizeof e->message, "token answer larger than %lu bytes",
               (unsigned long)c->x.response.max);
    c->x.response.max = max;
    e->sent = 0;
    sapwf_exchange_free(&c->x);
    return 0;
  }
  c->x.response.max = max;
  luaL_checkstack(L, 6, "too many nested calls");
  push_decoded(L, c, decode_idx);                     /* answer */
  sapwf_buffer_free(&c->x.response.body);             /* wipes the token text */
  if (status == 200) {
    ok = store(L, c, e);
  } else {
    sapwf_header_field retry_after;                   /* a 429 or 503 may say when */
    refused(L, status, e);
    if (sapwf_header_find(c->x.response.headers.data, c->x.response.headers.len, "retry-after",
                          &retry_after))
      sapwf_retry_after(retry_after.value, retry_after.value_len, time(NULL), &e->retry_after);
    ok = 0;
  }
  sapwf_buffer_free(&c->x.response.headers);
  lua_settop(L, top);
  return ok;
}


/* How long before expiry a token is renewed: token_margin, but at most half its lifetime,
 * so a token that lives no longer than the margin (expires_in 30, margin 60) is still
 * used for half its life instead of being fetched anew for every call. */
static double margin_of(const sapwf_client *c)
{
  double half = c->token_lifetime / 2;
  return c->token_margin < half ? c->token_margin : half;
}


/* Makes sure a token with more than its margin (margin_of) left is cached (a new one when
 * force is set). decode_idx is where cjson.safe's decode is (an upvalue index).
 * A refresh that fails while the cached token is still valid is no failure: that token
 * serves until it expires, and the refresh is tried again at most every REFRESH_RETRY
 * seconds (a token endpoint that hangs must not slow every call down by its timeout).
 * Without auto_token only force fetches: the token comes from set_token, whose owner (for
 * sapwf.ngx, one fetch shared by every nginx worker and thread) decides when to renew it,
 * so it is used until it expires and its absence is an error, never a fetch. */
int sapwf_token_ensure(lua_State *L, sapwf_client *c, int decode_idx, int force, sapwf_error *e)
{
  double t = sapwf_now();
  int usable = c->token != NULL && t + TOKEN_FLOOR < c->token_expiry;
  if (!force && c->token != NULL && !c->auto_token && t < c->token_expiry)
    return 1;
  if (!force && c->token != NULL && c->auto_token
      && (t + margin_of(c) < c->token_expiry || (usable && t < c->refresh_after)))
    return 1;
  if (!force && !c->auto_token) {
    sapwf_error_init(e, "auth", "token");
    snprintf(e->message, sizeof e->message, c->token == NULL
             ? "no token: this client (auto_token = false) uses the one given to set_token"
             : "the token given to set_token has expired");
    return 0;
  }
  if (fetch(L, c, decode_idx, e))
    return 1;
  if (!force && usable) {                             /* usable: a token is cached */
    c->refresh_after = sapwf_now() + REFRESH_RETRY;
    return 1;
  }
  return 0;
}


/* The API answered 401 to the token of generation gen, so it did not act on the request:
 * renewing that token and sending the request once more is safe. Called by the Lua layer
 * (client:renew), where the rule to send again lives. Returns 1 when the request may go
 * again with the token now cached, 0 when it may not (the 401 is the answer), -1 with e
 * filled when the renewal failed.
 *
 * replayed: the 401 came to the request's second sending, whose token a renewal had just
 * fetched. Then the API refuses this client's tokens for now (another audience, a deleted
 * binding), and renewing on every call would cost a token request per call, without
 * bound: for RENEW_HOLD seconds a 401 to that token renews nothing (client:request and
 * batches alike): at most one token request per RENEW_HOLD for an API that refuses for
 * good. Without auto_token nothing is renewed here: the token's owner renews it, once for
 * all its users (sapwf.ngx). */
int sapwf_token_renew(lua_State *L, sapwf_client *c, int decode_idx, unsigned long gen,
                      int replayed, sapwf_error *e)
{
  if (!c->auto_token)
    return 0;
  if (gen != c->token_gen)
    return 1;                             /* another request renewed it meanwhile */
  if (replayed) {
    c->refused_gen = c->token_gen;
    c->refused_until = sapwf_now() + RENEW_HOLD;
    return 0;
  }
  if (c->token != NULL && c->refused_gen == c->token_gen && sapwf_now() < c->refused_until)
    return 0;
  sapwf_token_drop(c);                    /* refused: a failed fetch must not leave it */
  return sapwf_token_ensure(L, c, decode_idx, 1, e) ? 1 : -1;
}
