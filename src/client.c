/* The Client userdata: options, the two easy handles, close, __gc, __close, __tostring.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdint.h>
#include <stdio.h>
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


/* {====================================================================
 * Options
 * ===================================================================== */

typedef struct options {
  const char *api_url, *token_url, *client_id, *client_secret, *cert, *key;
  const char *cafile, *proxy, *user_agent;
  size_t api_url_len, client_id_len, secret_len, cert_len, key_len;
  double timeout, connect_timeout, token_margin;
  size_t max_response;
  int verify;
  int auto_token;
} options;

static const char *const option_names[] = {
  "api_url", "token_url", "client_id", "client_secret", "cert", "key", "timeout",
  "connect_timeout", "cafile", "verify", "proxy", "token_margin", "max_response",
  "user_agent", "auto_token", NULL
};

/* Seconds as a long count of milliseconds must fit 32 bits wherever long does. */
#define MAX_SECONDS 2147483.0
#define MAX_RESPONSE_LIMIT ((double)(SIZE_MAX / 2) < 9007199254740992.0 \
                            ? (double)(SIZE_MAX / 2) : 9007199254740992.0)


/* Does not return. The offending value is on top of the stack. */
static int option_type_error(lua_State *L, const char *name, const char *expected)
{
  return luaL_error(L, "bad option '%s' (%s expected, got %s)", name, expected,
                    luaL_typename(L, -1));
}


/* Raises unless every key of the options table (argument 1) is a known option name.
 * The stack remains unchanged. */
static void check_option_names(lua_State *L)
{
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {                       /* key, value */
    const char *name;
    int i;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad option key (string expected, got %s)", luaL_typename(L, -2));
    name = lua_tostring(L, -2);
    for (i = 0; option_names[i] != NULL && strcmp(option_names[i], name) != 0; i++)
      ;
    if (option_names[i] == NULL)
      luaL_error(L, "bad option '%s' (unknown option)", name);
    lua_pop(L, 1);                                    /* key */
  }
}


/* Pushes opts[name] and returns it as a string, or NULL when it is nil and not required.
 * The value is left on the stack, so the string stays alive until new returns. */
static const char *opt_string(lua_State *L, const char *name, int required, size_t *len)
{
  size_t n;
  const char *s;
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1) && !required)
    return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    option_type_error(L, name, "string");
  s = lua_tolstring(L, -1, &n);
  if (strlen(s) != n)
    luaL_error(L, "bad option '%s' (string without NUL bytes expected)", name);
  if (required && n == 0)
    luaL_error(L, "bad option '%s' (non-empty string expected)", name);
  if (len != NULL)
    *len = n;
  return s;
}


/* opts[name] as a number from 0 to max, or dflt when nil. The stack remains unchanged. */
static double opt_number(lua_State *L, const char *name, double dflt, double max)
{
  double v = dflt;
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      option_type_error(L, name, "number");
    v = (double)lua_tonumber(L, -1);
    if (!(v >= 0 && v <= max))                        /* also refuses NaN */
      luaL_error(L, "bad option '%s' (number from 0 to %d expected)", name, (int)max);
  }
  lua_pop(L, 1);
  return v;
}


/* opts[name] as a boolean, or dflt when nil. The stack remains unchanged. */
static int opt_boolean(lua_State *L, const char *name, int dflt)
{
  int v = dflt;
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN)
      option_type_error(L, name, "boolean");
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}


/* Reads and checks every option before anything is allocated: a bad option raises
 * while nothing needs freeing. Leaves the string values on the stack (see opt_string). */
static void read_options(lua_State *L, options *o)
{
  double max_response;
  size_t ua_len = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 16, "too many options");
  check_option_names(L);
  o->api_url = opt_string(L, "api_url", 1, &o->api_url_len);
  o->token_url = opt_string(L, "token_url", 1, NULL);
  o->client_id = opt_string(L, "client_id", 1, &o->client_id_len);
  o->cert = opt_string(L, "cert", 0, &o->cert_len);
  o->key = opt_string(L, "key", 0, &o->key_len);
  if (o->cert != NULL && o->key == NULL)
    luaL_error(L, "bad option 'key' (string expected with 'cert', got nil)");
  if (o->key != NULL && o->cert == NULL)
    luaL_error(L, "bad option 'cert' (string expected with 'key', got nil)");
  /* With a certificate the secret is not needed, and not used if given too. */
  o->client_secret = opt_string(L, "client_secret", o->cert == NULL, &o->secret_len);
  o->cafile = opt_string(L, "cafile", 0, NULL);
  o->proxy = opt_string(L, "proxy", 0, NULL);
  o->user_agent = opt_string(L, "user_agent", 0, &ua_len);
  /* It goes into every request's User-Agent line: see sapwf_header_text_ok. */
  if (o->user_agent != NULL && !sapwf_header_text_ok(o->user_agent, ua_len, 1))
    luaL_error(L, "bad option 'user_agent' (visible ASCII and spaces expected: a header "
               "value cannot carry CR, LF or other control bytes)");
  o->timeout = opt_number(L, "timeout", 60, MAX_SECONDS);
  o->connect_timeout = opt_number(L, "connect_timeout", 10, MAX_SECONDS);
  o->token_margin = opt_number(L, "token_margin", 60, MAX_SECONDS);

  lua_getfield(L, 1, "max_response");
  max_response = 16.0 * 1024 * 1024;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      option_type_error(L, "max_response", "number");
    max_response = (double)lua_tonumber(L, -1);
    if (!(max_response >= 1 && max_response <= MAX_RESPONSE_LIMIT)
        || (double)(size_t)max_response != max_response)
      luaL_error(L, "bad option 'max_response' (positive integer expected)");
  }
  o->max_response = (size_t)max_response;
  lua_pop(L, 1);

  o->verify = opt_boolean(L, "verify", 1);
  o->auto_token = opt_boolean(L, "auto_token", 1);
}

/* }==================================================================== */


/* Options both handles share. Returns the first setopt failure. */
static CURLcode apply_common_options(CURL *easy, const options *o)
{
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
  SAPWF_SETOPT(rc, easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000));
  SAPWF_SETOPT(rc, easy, CURLOPT_USERAGENT,
               o->user_agent != NULL ? o->user_agent : "sapwf/" SAPWF_VERSION);
  if (o->cafile != NULL)
    SAPWF_SETOPT(rc, easy, CURLOPT_CAINFO, o->cafile);
  if (!o->verify) {
    SAPWF_SETOPT(rc, easy, CURLOPT_SSL_VERIFYPEER, 0L);
    SAPWF_SETOPT(rc, easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->proxy != NULL)
    SAPWF_SETOPT(rc, easy, CURLOPT_PROXY, o->proxy);
  return rc;
}


/* The token handle: the only place the secret (HTTP Basic, by libcurl) or the client
 * certificate and key (mutual TLS) are ever used. Its form body is fixed, so it is set
 * once here; libcurl copies it. */
static CURLcode setup_token_handle(sapwf_client *c, const options *o)
{
  CURL *easy = c->token_easy;
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_URL, o->token_url);
  SAPWF_SETOPT(rc, easy, CURLOPT_HTTPHEADER, c->token_headers);
  if (c->key_pem == NULL) {
    SAPWF_SETOPT(rc, easy, CURLOPT_COPYPOSTFIELDS, "grant_type=client_credentials");
    SAPWF_SETOPT(rc, easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SAPWF_SETOPT(rc, easy, CURLOPT_USERNAME, o->client_id);
    SAPWF_SETOPT(rc, easy, CURLOPT_PASSWORD, c->secret);
  } else {
    static const char prefix[] = "grant_type=client_credentials&client_id=";
    struct curl_blob cert, key;
    char *id = curl_easy_escape(NULL, o->client_id, (int)o->client_id_len);
    char *body = id != NULL ? malloc(sizeof prefix + strlen(id)) : NULL;
    if (body != NULL) {
      sprintf(body, "%s%s", prefix, id);
      SAPWF_SETOPT(rc, easy, CURLOPT_COPYPOSTFIELDS, body);
    } else {
      rc = CURLE_OUT_OF_MEMORY;
    }
    free(body);
    curl_free(id);
    cert.data = (void *)o->cert;
    cert.len = o->cert_len;
    cert.flags = CURL_BLOB_COPY;                      /* public, libcurl may copy it */
    /* NOCOPY: libcurl uses our copy, which close wipes, and makes no copy of its own.
     * So key_pem must outlive the handle: close frees it after curl_easy_cleanup. */
    key.data = c->key_pem;
    key.len = c->key_len;
    key.flags = CURL_BLOB_NOCOPY;
    SAPWF_SETOPT(rc, easy, CURLOPT_SSLCERT_BLOB, &cert);
    SAPWF_SETOPT(rc, easy, CURLOPT_SSLCERTTYPE, "PEM");
    SAPWF_SETOPT(rc, easy, CURLOPT_SSLKEY_BLOB, &key);
    SAPWF_SETOPT(rc, easy, CURLOPT_SSLKEYTYPE, "PEM");
  }
  return rc;
}


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
static CURLcode open_client(sapwf_client *c, const options *o)
{
  CURLcode rc;
  struct curl_slist *h;
  c->token_margin = o->token_margin;
  c->timeout = o->timeout;
  c->auto_token = o->auto_token;
  c->response.max = o->max_response;
  c->api_url_len = o->api_url_len;
  c->api_url = copy_bytes(o->api_url, o->api_url_len);
  if (o->cert != NULL) {
    c->key_len = o->key_len;
    c->key_pem = copy_bytes(o->key, o->key_len);
  } else {
    c->secret_len = o->secret_len;
    c->secret = copy_bytes(o->client_secret, o->secret_len);
  }
  h = curl_slist_append(NULL, "Accept: application/json");
  c->token_headers = h;
  if (h != NULL && (h = curl_slist_append(h, "Expect:")) == NULL) {
    curl_slist_free_all(c->token_headers);
    c->token_headers = NULL;
  }
  c->token_easy = curl_easy_init();
  c->api_easy = curl_easy_init();
  if (c->api_url == NULL || (c->secret == NULL && c->key_pem == NULL)
      || c->token_headers == NULL || c->token_easy == NULL || c->api_easy == NULL)
    return CURLE_OUT_OF_MEMORY;
  rc = sapwf_easy_setup(c, c->token_easy);
  if (rc == CURLE_OK)
    rc = sapwf_easy_setup(c, c->api_easy);
  if (rc == CURLE_OK)
    rc = apply_common_options(c->token_easy, o);
  if (rc == CURLE_OK)
    rc = apply_common_options(c->api_easy, o);
  if (rc == CURLE_OK)
    rc = setup_token_handle(c, o);
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
  options o;
  sapwf_client *c;
  CURLcode rc;
  memset(&o, 0, sizeof o);
  read_options(L, &o);
  c = lua_newuserdatauv(L, sizeof *c, 0);             /* opts, values..., client */
  memset(c, 0, sizeof *c);
  c->closed = 1;
  luaL_getmetatable(L, SAPWF_CLIENT_MT);
  lua_setmetatable(L, -2);
  rc = open_client(c, &o);
  if (rc != CURLE_OK)
    return luaL_error(L, "sapwf: cannot set up libcurl: %s", curl_easy_strerror(rc));
  /* Only the API handle joins the state's share (share.c says why not the token one). */
  c->share = sapwf_share_acquire(L);
  if (c->share != NULL)
    curl_easy_setopt(c->api_easy, CURLOPT_SHARE, sapwf_share_handle(c->share));
  c->closed = 0;
  return 1;
}


/* Frees everything a client holds. Safe on a client that failed half-way through new.
 * The easy handles go first: the token handle uses key_pem in place. */
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
  sapwf_free_secret(&c->secret, c->secret_len);
  sapwf_free_secret(&c->key_pem, c->key_len);
  sapwf_token_drop(c);
  sapwf_buffer_free(&c->response.body);
  sapwf_buffer_free(&c->response.headers);
}


/* close, __gc and __close: one idempotent path. Lua runs finalizers inside calls (at any
 * allocation, e.g. while cjson decodes the token answer), so a finalizer may close this
 * client while one of its calls is still using the handles and buffers. Then the client
 * is only marked closed, and the call frees it when it ends (sapwf_client_unhold). */
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


/* A call that may run Lua code (a token fetch decodes with cjson) holds the client while
 * it uses the handles and buffers: a close in between is deferred to unhold. unhold
 * returns 1 while the client is still open; 0 when it was closed during the call (and is
 * freed now): the call must not use it again. A raise between hold and unhold (only "not
 * enough memory") leaves the client held: its close is then deferred for good, which
 * leaks it but never frees memory that a call is still using. */
void sapwf_client_hold(sapwf_client *c)
{
  c->busy++;
}


int sapwf_client_unhold(lua_State *L, sapwf_client *c)
{
  c->busy--;
  if (c->busy == 0 && c->close_pending)
    release(L, c);
  return !c->closed;
}


static const luaL_Reg client_methods[] = {
  {"request", sapwf_client_request},
  {"token", sapwf_client_token},
  {"set_token", sapwf_client_set_token},
  {"batch", sapwf_batch_new},
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
  lua_pushvalue(L, -1);                               /* decode, decode */
  sapwf_batch_open(L);                                /* decode */
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
