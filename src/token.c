/* The client-credentials token: fetch, cache, refresh, and client:token.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds: expiry must not move when the wall clock is set. */
static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


void sapwf_token_drop(sapwf_client *c)
{
  sapwf_free_secret(&c->token, c->token_len);
  c->token_len = 0;
  free(c->scope);
  c->scope = NULL;
  c->token_expiry = 0;
}


/* Copies the string field `name` of the table at idx into dst (truncated to size), or
 * leaves dst empty. The stack remains unchanged. */
static void copy_field(lua_State *L, int idx, const char *name, char *dst, size_t size)
{
  dst[0] = '\0';
  if (lua_type(L, idx) != LUA_TTABLE)
    return;
  lua_getfield(L, idx, name);
  if (lua_type(L, -1) == LUA_TSTRING)
    snprintf(dst, size, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
}


/* Pushes cjson.safe.decode(answer), or nil if the answer is not JSON. It runs after
 * curl_easy_perform returned, under lua_pcall; only a memory error is raised again. */
static void push_decoded(lua_State *L, sapwf_client *c, int decode_idx)
{
  const sapwf_buffer *b = &c->response.body;
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
  sapwf_error_init(e, auth ? "auth" : "server", "token");
  e->status = status;
  copy_field(L, -1, "error", e->code, sizeof e->code);
  copy_field(L, -1, "error_description", e->message, sizeof e->message);
  if (e->message[0] == '\0')
    snprintf(e->message, sizeof e->message, auth
             ? "token endpoint refused the client credentials (HTTP %ld)"
             : "token endpoint answered HTTP %ld", status);
}


static int decode_error(sapwf_error *e, const char *message)
{
  sapwf_error_init(e, "decode", "token");
  e->status = 200;
  snprintf(e->message, sizeof e->message, "%s", message);
  return 0;
}


/* Caches access_token, expiry and scope from the decoded 200 answer on top. A missing
 * expires_in is allowed (RFC 6749 5.1 only recommends it): the token is then kept until
 * the API answers 401. Returns 0 with e filled when the answer is unusable. */
static int store(lua_State *L, sapwf_client *c, sapwf_error *e)
{
  const char *token, *scope = NULL;
  size_t token_len, scope_len = 0;
  double expires_in = HUGE_VAL;
  char *token_copy, *scope_copy = NULL;
  if (lua_type(L, -1) != LUA_TTABLE)
    return decode_error(e, "token answer is not a JSON object");
  lua_getfield(L, -1, "access_token");                /* answer, token */
  token = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &token_len) : NULL;
  if (token == NULL || token_len == 0)
    return decode_error(e, "token answer has no access_token");
  lua_getfield(L, -2, "expires_in");                  /* answer, token, expires_in */
  if (!lua_isnil(L, -1)) {
    expires_in = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
    if (!(expires_in >= 0))
      return decode_error(e, "token answer has a bad expires_in");
  }
  lua_getfield(L, -3, "scope");                       /* answer, token, expires_in, scope */
  if (lua_type(L, -1) == LUA_TSTRING)
    scope = lua_tolstring(L, -1, &scope_len);

  token_copy = malloc(token_len + 1);
  if (scope != NULL)
    scope_copy = malloc(scope_len + 1);
  if (token_copy == NULL || (scope != NULL && scope_copy == NULL)) {
    free(token_copy);
    free(scope_copy);
    return luaL_error(L, "not enough memory");
  }
  memcpy(token_copy, token, token_len + 1);
  if (scope != NULL)
    memcpy(scope_copy, scope, scope_len + 1);
  sapwf_token_drop(c);
  c->token = token_copy;
  c->token_len = token_len;
  c->scope = scope_copy;
  c->token_expiry = now() + expires_in;
  return 1;
}


/* POSTs to the token URL and caches the answer. Returns 0 with e filled on failure; the
 * stack remains unchanged. A token error means the API request itself was not sent, so
 * sent = false. Token requests may be re-sent by libcurl: a second token is harmless. */
static int fetch(lua_State *L, sapwf_client *c, int decode_idx, sapwf_error *e)
{
  int top = lua_gettop(L), ok;
  long status;
  CURLcode rc;
  sapwf_token_drop(c);
  rc = sapwf_perform(c, c->token_easy, 0, &status);
  if (rc != CURLE_OK) {
    sapwf_error_from_curl(c, c->token_easy, rc, "token", e);
    e->sent = 0;
    sapwf_buffer_free(&c->response.body);
    sapwf_buffer_free(&c->response.headers);
    return 0;
  }
  luaL_checkstack(L, 6, "too many nested calls");
  push_decoded(L, c, decode_idx);                     /* answer */
  sapwf_buffer_free(&c->response.body);               /* wipes the token text */
  sapwf_buffer_free(&c->response.headers);
  if (status == 200) {
    ok = store(L, c, e);
  } else {
    refused(L, status, e);
    ok = 0;
  }
  lua_settop(L, top);
  return ok;
}


/* Makes sure a token with more than token_margin seconds left is cached (a new one when
 * force is set). decode_idx is where cjson.safe's decode is (an upvalue index). */
int sapwf_token_ensure(lua_State *L, sapwf_client *c, int decode_idx, int force, sapwf_error *e)
{
  if (!force && c->token != NULL && now() + c->token_margin < c->token_expiry)
    return 1;
  return fetch(L, c, decode_idx, e);
}


/***
 * The cached token, fetched if missing, near expiry or when force is true.
 * @function Client:token
 * @tparam[opt] boolean force
 * @treturn[1] string token
 * @treturn[1] number seconds left (math.huge when the answer had no expires_in)
 * @treturn[1] string|nil scope, space separated
 * @treturn[2] nil
 * @treturn[2] table err
 */
int sapwf_client_token(lua_State *L)
{
  sapwf_client *c = sapwf_check_open(L, 1);
  sapwf_error e;
  double left;
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TBOOLEAN)
    return luaL_argerror(L, 2, lua_pushfstring(L, "boolean expected, got %s",
                                               luaL_typename(L, 2)));
  if (!sapwf_token_ensure(L, c, lua_upvalueindex(1), lua_toboolean(L, 2), &e))
    return sapwf_push_error(L, &e);
  lua_pushlstring(L, c->token, c->token_len);
  left = c->token_expiry - now();
  if (left > 1e15)
    lua_pushnumber(L, (lua_Number)HUGE_VAL);
  else
    lua_pushinteger(L, left > 0 ? (lua_Integer)left : 0);
  if (c->scope != NULL)
    lua_pushstring(L, c->scope);
  else
    lua_pushnil(L);
  return 3;
}
