/* The Client userdata: its two easy handles, its methods (request, token, set_token,
 * renew) and one close path for close, __gc and __close. What a request does when the API
 * refuses its token (a 401) is decided in Lua (lua/sapwf/send.lua): request returns the
 * 401 as it came, and renew gets a new token when that can help.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


/* malloc'ed copy of n bytes plus a NUL, or NULL. */
static char *copy_bytes(const char *s, size_t n)
{
  char *p = malloc(n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}


/* Acquires everything for a client that exists, closed, as a userdata with its
 * metatable: whatever fails half-way is freed by __gc. Returns a setopt failure. */
static CURLcode open_client(lua_State *L, sapwf_client *c, const sapwf_options *o)
{
  CURLcode rc;
  struct curl_slist *h;
  c->token_margin = o->token_margin;
  c->x.timeout = o->timeout;
  c->auto_token = o->auto_token;
  c->x.response.max = o->max_response;
  c->api_url_len = o->api_url_len;
  c->api_url = copy_bytes(o->api_url, o->api_url_len);
  if (o->cert != NULL) {
    c->key_len = o->key_len;
    c->key_pem = copy_bytes(o->key, o->key_len);
  } else {
    c->secret_len = o->secret_len;
    c->secret = copy_bytes(o->client_secret, o->secret_len);
    c->basic = sapwf_basic_credentials(o->client_id, o->client_id_len, o->client_secret,
                                       o->secret_len, &c->basic_len);
  }
  h = curl_slist_append(NULL, "Accept: application/json");
  c->token_headers = h;
  if (h != NULL && (h = curl_slist_append(h, "Expect:")) == NULL) {
    curl_slist_free_all(c->token_headers);
    c->token_headers = NULL;
  }
  rc = CURLE_OK;
  c->extra_headers = sapwf_extra_headers(L, o, &rc);
  if (rc != CURLE_OK)
    return rc;
  c->token_easy = curl_easy_init();
  c->api_easy = curl_easy_init();
  if (c->api_url == NULL || (c->secret == NULL && c->key_pem == NULL)
      || (c->secret != NULL && c->basic == NULL)
      || c->token_headers == NULL || c->token_easy == NULL || c->api_easy == NULL)
    return CURLE_OUT_OF_MEMORY;
  rc = sapwf_exchange_setup(c->token_easy, &c->x);
  if (rc == CURLE_OK)
    rc = sapwf_exchange_setup(c->api_easy, &c->x);
  if (rc == CURLE_OK)
    rc = sapwf_apply_options(c->token_easy, o);
  if (rc == CURLE_OK)
    rc = sapwf_apply_options(c->api_easy, o);
  if (rc == CURLE_OK)
    rc = sapwf_setup_token_handle(c, o);
  return rc;
}


/***
 * Creates a client. Raises on a bad option, naming it.
 * @function new
 * @tparam table opts see docs/DESIGN.md
 * @treturn Client
 */
int sapwf_client_new(lua_State *L)
{
  sapwf_options o;
  sapwf_client *c;
  CURLcode rc;
  memset(&o, 0, sizeof o);
  sapwf_read_options(L, &o);
  c = lua_newuserdatauv(L, sizeof *c, 0);             /* opts, values..., client */
  memset(c, 0, sizeof *c);
  c->closed = 1;
  luaL_getmetatable(L, SAPWF_CLIENT_MT);
  lua_setmetatable(L, -2);
  rc = open_client(L, c, &o);
  if (rc != CURLE_OK)
    return luaL_error(L, "sapwf: cannot set up libcurl: %s", curl_easy_strerror(rc));
  /* Only the API handle joins the state's share (share.c says why not the token one). */
  c->share = sapwf_share_acquire(L);
  if (c->share != NULL)
    curl_easy_setopt(c->api_easy, CURLOPT_SHARE, sapwf_share_handle(c->share));
  c->closed = 0;
  return 1;
}


/* What client:redact takes out of a server's text: wiped at close, or, while batches made
 * on the client are open, when the last of them is released (sapwf_client_batch_released):
 * a batch hands over what was in flight after the client closed, and those answers may
 * quote the token they carried. Idempotent. */
static void wipe_secrets(sapwf_client *c)
{
  sapwf_free_headers(c->extra_headers);
  c->extra_headers = NULL;
  sapwf_free_secret(&c->secret, c->secret_len);
  sapwf_free_secret(&c->basic, c->basic_len);
  sapwf_token_drop(c);
  sapwf_free_secret(&c->prev_token, c->prev_token_len);    /* the dropped one included */
}


/* Frees everything a client holds (what redact needs: see wipe_secrets). Safe on a client
 * that failed half-way through new. The easy handles go first: the token handle uses
 * key_pem in place. */
static void release(lua_State *L, sapwf_client *c)
{
  c->close_pending = 0;
  if (c->token_easy != NULL) {
    curl_easy_cleanup(c->token_easy);
    c->token_easy = NULL;
  }
  if (c->api_easy != NULL) {
    curl_easy_cleanup(c->api_easy);
    c->api_easy = NULL;
  }
  sapwf_share_release(L, c->share);                   /* after the handle that used it */
  c->share = NULL;
  curl_slist_free_all(c->token_headers);
  c->token_headers = NULL;
  free(c->api_url);
  c->api_url = NULL;
  sapwf_free_secret(&c->key_pem, c->key_len);              /* never redacted: not kept */
  sapwf_exchange_free(&c->x);
  if (c->batches == 0)
    wipe_secrets(c);
}


/* A batch made on c (batch.c) is released: the last one wipes what a closed client kept for
 * redaction, once no call holds the client (else its end releases and wipes). */
void sapwf_client_batch_released(sapwf_client *c)
{
  c->batches--;
  if (c->batches > 0 || !c->closed)
    return;
  if (c->busy > 0)
    c->close_pending = 1;
  else
    wipe_secrets(c);
}


/* close, __gc and __close: one idempotent path. Lua runs finalizers inside calls (at any
 * allocation, e.g. while cjson decodes the token answer), so a finalizer may close this
 * client while one of its calls is still using the handles and buffers. Then the client
 * is only marked closed, and the call frees it when it ends (sapwf_client_call). */
static int client_close(lua_State *L)
{
  sapwf_client *c = luaL_checkudata(L, 1, SAPWF_CLIENT_MT);
  c->closed = 1;
  if (c->busy > 0)
    c->close_pending = 1;
  else
    release(L, c);
  return 0;
}


static int client_tostring(lua_State *L)
{
  sapwf_client *c = luaL_checkudata(L, 1, SAPWF_CLIENT_MT);
  if (c->closed)
    lua_pushliteral(L, SAPWF_CLIENT_MT " (closed)");
  else
    lua_pushfstring(L, SAPWF_CLIENT_MT " (%p)", (void *)c);
  return 1;
}


sapwf_client *sapwf_check_open(lua_State *L, int idx)
{
  sapwf_client *c = luaL_checkudata(L, idx, SAPWF_CLIENT_MT);
  if (c->closed)
    luaL_error(L, "attempt to use a closed sapwf client");
  return c;
}


/* A call that may run Lua code (a token fetch decodes with cjson; a push may collect) holds
 * the client while it uses the handles and buffers, so a finalizer may run in between. It
 * may close the client: the close is deferred until the call ends. It may not call the
 * client (nor one of its batches) in any other way: that call would take the running
 * call's buffers, token and deadline, so it raises (sapwf_client_refuse_busy) before it
 * touches anything.
 *
 * The held part runs as a protected call (sapwf_client_call), so a raise inside it (out of
 * memory; on Lua 5.1, 5.3 and LuaJIT also a finalizer's error, which they pass on) still
 * restores the deadline and ends the hold, and only then goes on (lua_error): a client left
 * held would never be freed, its secret never wiped, and a deadline left behind would
 * time out every later token fetch at once. */
void sapwf_client_refuse_busy(lua_State *L, const sapwf_client *c)
{
  if (c->busy > 0)
    luaL_error(L, "sapwf: client is busy with another call (a finalizer called it during "
               "a call)");
}


/* Raises unless the client is open and in no call. */
static void check_idle(lua_State *L, const sapwf_client *c)
{
  if (c->closed)
    luaL_error(L, "attempt to use a closed sapwf client");
  sapwf_client_refuse_busy(L, c);
}


/* Pushes what sapwf_client_call calls: fn, its context and the calling method's upvalue 1
 * (cjson.safe's decode), which fn finds at index 2 (a protected call has upvalues of its
 * own). The caller checks the client after this push: on Lua 5.1 and LuaJIT pushing a C
 * function allocates, so a finalizer may have run. */
void sapwf_push_held(lua_State *L, lua_CFunction fn, void *ctx)
{
  luaL_checkstack(L, 3, "too many nested calls");
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ctx);
  lua_pushvalue(L, lua_upvalueindex(1));
}


/* Calls what sapwf_push_held pushed, with the client held; then restores the deadline the
 * client had and ends the hold (a close deferred meanwhile takes effect: c->closed says
 * so). Leaves fn's results, or the error, on the stack and returns lua_pcall's status: the
 * caller re-raises (lua_error) after its own cleanup. No Lua runs between the caller's
 * checks and the hold. */
int sapwf_client_call(lua_State *L, sapwf_client *c)
{
  double outer = c->x.deadline;
  int status;
  c->busy++;
  status = lua_pcall(L, 2, LUA_MULTRET, 0);
  c->x.deadline = outer;
  c->busy--;
  if (c->busy == 0 && c->close_pending)
    release(L, c);
  return status;
}


/* sapwf_client_call for one of the client's methods: raises its error, and the closed
 * error when a finalizer closed the client and `closed_is_error`. Returns the number of
 * results, above `base`. */
static int call_method(lua_State *L, sapwf_client *c, int base, const int *closed_is_error)
{
  if (sapwf_client_call(L, c) != LUA_OK)
    return lua_error(L);
  if (c->closed && *closed_is_error)
    return luaL_error(L, "attempt to use a closed sapwf client");
  return lua_gettop(L) - base;
}


/* {====================================================================
 * Methods. Each that may fetch a token (which runs cjson, so maybe a finalizer) or pushes
 * from the client's buffers runs that part held (sapwf_client_call): a `held_*` function,
 * with its arguments in a struct.
 * ===================================================================== */

/* When the request that begins now must be done: the deadline Lua passes at `arg` (the
 * one of the request a 401 interrupted, so its replay takes no longer than the rest), or
 * `timeout` from now; 0: never (timeout = 0 sets no limit, as in libcurl). */
static double deadline_arg(lua_State *L, int arg, const sapwf_client *c)
{
  double deadline;
  if (lua_isnoneornil(L, arg))
    return c->x.timeout > 0 ? sapwf_now() + c->x.timeout : 0;
  deadline = (double)luaL_checknumber(L, arg);
  luaL_argcheck(L, deadline >= 0, arg, "deadline must be a monotonic time (0: none of its own)");
  return deadline;
}


/* One request to api_url .. path with the cached token. Calls no Lua function and frees
 * what it allocates before it returns. */
static CURLcode api_exchange(sapwf_client *c, const sapwf_request *r, long *status)
{
  CURL *easy = c->api_easy;
  CURLcode rc = CURLE_OK;
  struct curl_slist *headers;
  char *url = malloc(c->api_url_len + r->path_len + 1);
  if (url == NULL)
    return CURLE_OUT_OF_MEMORY;
  memcpy(url, c->api_url, c->api_url_len);
  memcpy(url + c->api_url_len, r->path, r->path_len);
  url[c->api_url_len + r->path_len] = '\0';
  c->x.errbuf[0] = '\0';
  SAPWF_SETOPT(rc, easy, CURLOPT_URL, url);           /* libcurl copies it */
  free(url);
  /* The usual lists are cached with the token; one with another Accept is made for this
   * request and freed after it. */
  headers = r->accept == NULL ? sapwf_token_headers(c, r->body != NULL)
    : sapwf_request_headers(c->token, c->token_len, r->body != NULL, r->accept,
                            c->extra_headers);
  if (headers == NULL)
    return CURLE_OUT_OF_MEMORY;
  SAPWF_SETOPT(rc, easy, CURLOPT_HTTPHEADER, headers);
  if (rc == CURLE_OK)
    rc = sapwf_set_method(easy, r->method, r->body, r->body_len);
  c->x.response.sink_path = r->to_file;
  c->x.response.reading = r->method == SAPWF_METHOD_GET;
  if (rc == CURLE_OK)
    rc = sapwf_exchange_perform(&c->x, easy, sapwf_refuses_resend(r->method), status);
  /* The handle keeps no pointer to the headers (a new token frees them) or the body (a Lua
   * string) after this call, nor the exchange to the file name (a Lua string). */
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
  if (r->accept != NULL)
    sapwf_free_headers(headers);
  return rc;
}


typedef struct request_call {
  sapwf_client *c;
  sapwf_request r;
  double deadline;
  int unsent;                      /* out: closed during the token fetch, nothing sent */
} request_call;


/* client:request's held part. Returns the number of values pushed; none, with unsent set,
 * when a finalizer closed the client during the token fetch: then nothing is sent. */
static int held_request(lua_State *L)
{
  request_call *q = lua_touserdata(L, 1);
  sapwf_client *c = q->c;
  const sapwf_request *r = &q->r;
  sapwf_error e;
  long status = 0;
  unsigned long gen;
  CURLcode rc;
  c->x.deadline = q->deadline;
  if (!sapwf_token_ensure(L, c, 2, 0, &e))
    return sapwf_push_error(L, &e);
  if (c->closed) {
    q->unsent = 1;
    return 0;
  }
  gen = c->token_gen;
  rc = api_exchange(c, r, &status);
  if (rc != CURLE_OK) {
    sapwf_error_from_exchange(c->api_easy, rc, &c->x, "request", &e);
    c->x.response.sink_path = NULL;
    sapwf_exchange_free(&c->x);
    return sapwf_push_error(L, &e);
  }
  c->x.response.sink_path = NULL;
  sapwf_push_answer(L, status, &c->x.response);       /* status, body, headers */
  lua_pushinteger(L, (lua_Integer)gen);
  lua_pushnumber(L, (lua_Number)c->x.deadline);
  return 5;
}


/***
 * One API call with the cached token (fetched first if needed). Every answer is returned
 * as it came, a 401 too: renew says whether sending it again can help.
 * @function Client:request
 * @tparam string method GET POST PUT PATCH DELETE
 * @tparam string path starting with "/", appended to api_url as is
 * @tparam[opt] string body sent as application/json
 * @tparam[opt] number deadline monotonic time by which it must be done (default: timeout
 * from now)
 * @tparam[opt] table output `accept`: the Accept header (default application/json);
 * `to_file`: a path a 2xx body is written to (created or emptied), in constant memory and
 * beyond max_response; the body returned is then ""
 * @treturn[1] integer status
 * @treturn[1] string body
 * @treturn[1] string the header lines, names lower-cased: read them with header or headers
 * @treturn[1] integer the generation of the token it carried, for renew
 * @treturn[1] number the deadline it had
 * @treturn[2] nil
 * @treturn[2] table err
 */
static int client_request(lua_State *L)
{
  request_call q;
  int base;
  q.c = luaL_checkudata(L, 1, SAPWF_CLIENT_MT);
  q.unsent = 0;
  sapwf_check_request(L, 2, &q.r);
  q.deadline = deadline_arg(L, 5, q.c);
  sapwf_check_output(L, 6, &q.r);
  base = lua_gettop(L);
  sapwf_push_held(L, held_request, &q);
  /* After the checks and the push: the output table's __index, or a finalizer, may have
   * run and closed the client. */
  check_idle(L, q.c);
  /* A close during the call takes effect at its end. When the answer had come it is
   * returned; a call that never went out raises as any call on a closed client. */
  return call_method(L, q.c, base, &q.unsent);
}


/***
 * After a 401 to a request that carried token generation `gen`: renews the token when
 * that can help (see token.c). replayed: the 401 came to the request's second sending.
 * @function Client:renew
 * @tparam integer gen as request returned it
 * @tparam boolean replayed
 * @tparam[opt] number deadline as request returned it
 * @treturn[1] boolean true: send the request again; false: the 401 is the answer
 * @treturn[2] nil
 * @treturn[2] table err (the token fetch failed)
 */
typedef struct renew_call {
  sapwf_client *c;
  lua_Integer gen;
  int replayed;
  double deadline;
} renew_call;


static int held_renew(lua_State *L)
{
  renew_call *q = lua_touserdata(L, 1);
  sapwf_error e;
  int rc;
  q->c->x.deadline = q->deadline;
  rc = sapwf_token_renew(L, q->c, 2, (unsigned long)q->gen, q->replayed, &e);
  if (rc < 0)
    return sapwf_push_error(L, &e);         /* e holds no pointer into the client */
  lua_pushboolean(L, rc);
  return 1;
}


static int client_renew(lua_State *L)
{
  static const int closed_is_error = 1;
  renew_call q;
  int base;
  q.c = sapwf_check_open(L, 1);
  q.gen = luaL_checkinteger(L, 2);
  q.replayed = lua_toboolean(L, 3);
  q.deadline = deadline_arg(L, 4, q.c);
  base = lua_gettop(L);
  sapwf_push_held(L, held_renew, &q);
  check_idle(L, q.c);
  return call_method(L, q.c, base, &closed_is_error);
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
typedef struct token_call {
  sapwf_client *c;
  int force;
  int ok;                          /* out: a token was pushed (a failure is no closed error) */
} token_call;


static int held_token(lua_State *L)
{
  token_call *q = lua_touserdata(L, 1);
  sapwf_client *c = q->c;
  sapwf_error e;
  double left;
  if (!sapwf_token_ensure(L, c, 2, q->force, &e))
    return sapwf_push_error(L, &e);         /* e holds no pointer into the client */
  q->ok = 1;
  /* Pushed while held: on Lua 5.1 and LuaJIT a push may run the collector before it copies,
   * and a finalizer that closed the client then would free the token being copied. */
  lua_pushlstring(L, c->token, c->token_len);
  left = c->token_expiry - sapwf_now();
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


static int client_token(lua_State *L)
{
  token_call q;
  int base;
  q.c = sapwf_check_open(L, 1);
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TBOOLEAN)
    return luaL_argerror(L, 2, lua_pushfstring(L, "boolean expected, got %s",
                                               luaL_typename(L, 2)));
  q.force = lua_toboolean(L, 2);
  q.ok = 0;
  base = lua_gettop(L);
  sapwf_push_held(L, held_token, &q);
  check_idle(L, q.c);
  return call_method(L, q.c, base, &q.ok);
}


/***
 * Caches a token fetched elsewhere, replacing the cached one (which is wiped). For clients
 * with auto_token = false, whose owner shares one token between many clients.
 * @function Client:set_token
 * @tparam string token
 * @tparam number seconds_left its remaining lifetime (math.huge: until the API answers 401)
 * @tparam[opt] string scope space separated, as client:token() returns it
 */
static int client_set_token(lua_State *L)
{
  sapwf_client *c = sapwf_check_open(L, 1);
  size_t token_len, scope_len = 0;
  const char *token, *scope = NULL;
  double left;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_argerror(L, 2, lua_pushfstring(L, "string expected, got %s",
                                               luaL_typename(L, 2)));
  token = lua_tolstring(L, 2, &token_len);
  /* The message never quotes the token. */
  luaL_argcheck(L, token_len > 0 && sapwf_header_text_ok(token, token_len, 0), 2,
                "token must be non-empty visible ASCII");
  if (lua_type(L, 3) != LUA_TNUMBER)
    return luaL_argerror(L, 3, lua_pushfstring(L, "number expected, got %s",
                                               luaL_typename(L, 3)));
  left = (double)lua_tonumber(L, 3);
  luaL_argcheck(L, left >= 0, 3, "seconds left must be a number >= 0");   /* refuses NaN */
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) != LUA_TSTRING)
      return luaL_argerror(L, 4, lua_pushfstring(L, "string or nil expected, got %s",
                                                 luaL_typename(L, 4)));
    scope = lua_tolstring(L, 4, &scope_len);
    luaL_argcheck(L, strlen(scope) == scope_len, 4, "scope must not contain NUL bytes");
  }
  sapwf_client_refuse_busy(L, c);          /* a finalizer's: the call's token is in use */
  sapwf_token_set(L, c, token, token_len, scope, scope_len, left);
  return 0;
}


/***
 * text with the client's secret, its Basic credentials, its cached token and the values of
 * its `headers` replaced by "[redacted]": the Lua layer's errors quote what servers say, and
 * a server may quote what it was sent. A closed client has none of them left (but while
 * batches made on it are open: see wipe_secrets), and then text comes back as it is. A
 * batch's answers may quote older tokens still: Batch:redact takes those out too.
 * @function Client:redact
 * @tparam string text
 * @treturn string
 */
typedef struct redact_call {
  sapwf_client *c;
  const char *text;                /* the argument, on the stack */
  size_t len;
} redact_call;


/* Held: the result's buffer allocates, so a finalizer may run, and a close then must not
 * free the secrets being compared. The `headers` option's values are secrets too (an API
 * Management key): each line's value, after "Name: ", of SECRET_HEADER_MIN bytes or more
 * (a shorter one, a region or a flag, is no secret, and taking it out would garble the
 * text: an error code, an id). */
#define SECRET_HEADER_MIN 8


/* How many entries sapwf_client_secrets fills. */
int sapwf_client_secret_count(const sapwf_client *c)
{
  const struct curl_slist *h;
  int n = 4;
  for (h = c->extra_headers; h != NULL; h = h->next)
    n++;
  return n;
}


/* Fills secrets (sapwf_client_secret_count entries) with what redact takes out of a text;
 * an entry without data is none. They point into the client: use them held. */
int sapwf_client_secrets(const sapwf_client *c, sapwf_text *secrets)
{
  const struct curl_slist *h;
  int n = 4;
  for (h = c->extra_headers; h != NULL; h = h->next) {
    const char *value = strchr(h->data, ':');
    size_t len = value != NULL ? strlen(value + 2) : 0;      /* "Name: value" (options.c) */
    secrets[n].data = len >= SECRET_HEADER_MIN ? value + 2 : NULL;
    secrets[n].len = len >= SECRET_HEADER_MIN ? len : 0;
    n++;
  }
  secrets[0].data = c->secret;
  secrets[0].len = c->secret_len;
  secrets[1].data = c->basic;
  secrets[1].len = c->basic_len;
  secrets[2].data = c->token;
  secrets[2].len = c->token_len;
  secrets[3].data = c->prev_token;          /* a request in flight may have carried it */
  secrets[3].len = c->prev_token_len;
  return n;
}


static int held_redact(lua_State *L)
{
  redact_call *q = lua_touserdata(L, 1);
  sapwf_text *secrets = lua_newuserdata(L, (size_t)sapwf_client_secret_count(q->c)
                                           * sizeof *secrets);
  int n = sapwf_client_secrets(q->c, secrets);
  sapwf_push_redacted(L, q->text, q->len, secrets, n);     /* functions.c */
  return 1;
}


static int client_redact(lua_State *L)
{
  static const int closed_is_error = 0;
  redact_call q;
  int base;
  q.c = luaL_checkudata(L, 1, SAPWF_CLIENT_MT);
  q.text = luaL_checklstring(L, 2, &q.len);
  lua_settop(L, 2);
  base = lua_gettop(L);
  sapwf_push_held(L, held_redact, &q);
  /* closed (before, or by a finalizer the push ran) with nothing kept: nothing to take out */
  if (q.c->closed && q.c->batches == 0) {
    lua_settop(L, 2);
    return 1;
  }
  sapwf_client_refuse_busy(L, q.c);
  return call_method(L, q.c, base, &closed_is_error);
}

/* }==================================================================== */


static const luaL_Reg client_methods[] = {
  {"request", client_request},
  {"renew", client_renew},
  {"token", client_token},
  {"set_token", client_set_token},
  {"redact", client_redact},
  {"close", client_close},
  {NULL, NULL}
};

static const luaL_Reg client_metamethods[] = {
  {"__gc", client_close},
  {"__close", client_close},
  {"__tostring", client_tostring},
  {NULL, NULL}
};


/* Creates the Client metatable. Expects cjson.safe's decode on top of the stack and pops
 * it: the methods get it as their upvalue 1. */
void sapwf_client_open(lua_State *L)
{
  luaL_newmetatable(L, SAPWF_CLIENT_MT);              /* decode, mt */
  lua_pushliteral(L, SAPWF_CLIENT_MT);
  lua_setfield(L, -2, "__name");                      /* Lua 5.1 does not set it */
  luaL_setfuncs(L, client_metamethods, 0);
  luaL_newlibtable(L, client_methods);                /* decode, mt, methods */
  lua_pushvalue(L, -3);                               /* decode, mt, methods, decode */
  luaL_setfuncs(L, client_methods, 1);                /* decode, mt, methods */
  lua_setfield(L, -2, "__index");                     /* decode, mt */
  lua_pop(L, 2);                                      /* <empty> */
}
