/* The options of sapwf.core.new: read from the Lua table (raising, naming the option) and
 * applied to the easy handles; the token handle's secret or client certificate is set
 * here and nowhere else. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int option_type_error(lua_State *L, const char *name, const char *expected);

/* Header names sapwf writes itself or that frame the request: an extra header must not
 * replace them (case does not matter). */
static const char *const reserved_headers[] = {
  "authorization", "content-type", "content-length", "transfer-encoding", "host", "expect",
  "accept", "connection", NULL
};


/* A header name: an RFC 9110 token. */
static int header_name_ok(const char *s, size_t len)
{
  size_t i;
  if (len == 0)
    return 0;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
          || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL)))
      return 0;
  }
  return 1;
}


/* Checks opts.headers: a table of name = value strings, each name a token and not one of
 * reserved_headers, each value visible ASCII and spaces (sapwf_header_text_ok). Raises
 * naming the header, never its value: it is often an API key. Leaves the table on the
 * stack and its index in o->headers_idx (0: none). */
static void check_headers(lua_State *L, sapwf_options *o)
{
  int idx;
  o->headers_idx = 0;
  lua_getfield(L, 1, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    option_type_error(L, "headers", "table");
  idx = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t name_len, value_len, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "bad option 'headers' (header names must be strings, got %s)",
                 luaL_typename(L, -2));
    name = lua_tolstring(L, -2, &name_len);
    if (!header_name_ok(name, name_len))
      luaL_error(L, "bad option 'headers' (a header name is not a token: letters, digits "
                 "and !#$%%&'*+-.^_`|~ only)");
    for (i = 0; reserved_headers[i] != NULL; i++)
      if (strlen(reserved_headers[i]) == name_len
          && curl_strnequal(reserved_headers[i], name, name_len))
        luaL_error(L, "bad option 'headers' (header '%s' is sapwf's own: it cannot be "
                   "replaced)", name);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad option 'headers' (header '%s': string expected, got %s)", name,
                 luaL_typename(L, -1));
    value = lua_tolstring(L, -1, &value_len);
    /* The message never quotes the value. */
    if (!sapwf_header_text_ok(value, value_len, 1))
      luaL_error(L, "bad option 'headers' (header '%s': the value must be visible ASCII and "
                 "spaces: a header cannot carry CR, LF or other control bytes)", name);
    lua_pop(L, 1);
  }
  o->headers_idx = idx;
}


/* {====================================================================
 * Options
 * ===================================================================== */

static const char *const option_names[] = {
  "api_url", "token_url", "client_id", "client_secret", "cert", "key", "timeout",
  "connect_timeout", "cafile", "verify", "proxy", "token_margin", "max_response",
  "user_agent", "auto_token", "headers", NULL
};

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
void sapwf_read_options(lua_State *L, sapwf_options *o)
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
  o->timeout = opt_number(L, "timeout", 60, SAPWF_MAX_SECONDS);
  o->connect_timeout = opt_number(L, "connect_timeout", 10, SAPWF_MAX_SECONDS);
  o->token_margin = opt_number(L, "token_margin", 60, SAPWF_MAX_SECONDS);

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
  check_headers(L, o);
}


/* The headers of every API request (sapwf_request_headers appends them): the extra lines,
 * "Name: value", or NULL; *rc is set when out of memory. The options were checked by
 * check_headers. */
struct curl_slist *sapwf_extra_headers(lua_State *L, const sapwf_options *o, CURLcode *rc)
{
  struct curl_slist *list = NULL;
  if (o->headers_idx == 0)
    return NULL;
  lua_pushnil(L);
  while (lua_next(L, o->headers_idx) != 0) {
    size_t name_len, value_len;
    const char *name = lua_tolstring(L, -2, &name_len);
    const char *value = lua_tolstring(L, -1, &value_len);
    char *line = malloc(name_len + value_len + 3);
    struct curl_slist *grown = NULL;
    if (line != NULL) {
      memcpy(line, name, name_len);
      memcpy(line + name_len, ": ", 2);
      memcpy(line + name_len + 2, value, value_len + 1);
      grown = curl_slist_append(list, line);          /* copies it */
      sapwf_free_secret(&line, name_len + value_len + 3);
    }
    if (grown == NULL) {
      lua_pop(L, 2);
      sapwf_free_headers(list);
      *rc = CURLE_OUT_OF_MEMORY;
      return NULL;
    }
    list = grown;
    lua_pop(L, 1);
  }
  return list;
}

/* }==================================================================== */


/* Options both handles share. Returns the first setopt failure. */
CURLcode sapwf_apply_options(CURL *easy, const sapwf_options *o)
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
CURLcode sapwf_setup_token_handle(sapwf_client *c, const sapwf_options *o)
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


