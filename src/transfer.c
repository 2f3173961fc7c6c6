/* One HTTP exchange on an easy handle: request headers, body upload, response buffer,
 * header capture, CURLcode to error mapping; and client:request. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In the order of enum sapwf_method (sapwf.h). */
static const char *const method_names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};


/* {====================================================================
 * Buffers and libcurl callbacks. The callbacks never call Lua.
 * ===================================================================== */

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


/* Appends n bytes to b unless b would then pass r->max. Returns 0 and sets a flag of r
 * when it refuses; the caller returns 0 to libcurl, which aborts the transfer. */
static int buffer_append(sapwf_response *r, sapwf_buffer *b, const char *p, size_t n)
{
  if (n == 0)
    return 1;
  if (n > r->max - b->len) {
    r->too_large = 1;
    return 0;
  }
  if (b->len + n > b->cap) {
    /* max is at most SIZE_MAX / 2 (client.c), so doubling cannot overflow. */
    size_t cap = b->cap > 0 ? b->cap : 16384;
    char *data;
    while (cap < b->len + n)
      cap *= 2;
    if (cap > r->max)
      cap = r->max;
    data = realloc(b->data, cap);
    if (data == NULL) {
      r->no_memory = 1;
      return 0;
    }
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 1;
}


static size_t write_body(char *p, size_t size, size_t nmemb, void *ud)
{
  sapwf_response *r = ud;
  return buffer_append(r, &r->body, p, size * nmemb) ? size * nmemb : 0;
}


/* Keeps the header lines of the last response only: a status line starts a new one
 * (after a 1xx, or when libcurl retried), so everything before it is dropped. Names are
 * lower-cased here, values kept as sent. */
static size_t collect_header(char *p, size_t size, size_t nitems, void *ud)
{
  sapwf_response *r = ud;
  size_t n = size * nitems, i;
  if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    r->headers.len = 0;
    r->body.len = 0;
    return buffer_append(r, &r->headers, p, n) ? n : 0;
  }
  i = r->headers.len;
  if (!buffer_append(r, &r->headers, p, n))
    return 0;
  sapwf_header_lower_name(r->headers.data + i, n);
  return n;
}


/* {--------------------------------------------------------------------
 * No silent second POST. When a reused keep-alive connection turns out dead before any
 * answer byte arrived, libcurl sends the request again on a new connection, by itself (so
 * it does for an HTTP/2 stream the server refused). For GET, PUT, DELETE that is fine
 * (idempotent), but a POST that reached the server before the connection died could start
 * a second workflow instance. The body goes out from memory with the headers
 * (CURLOPT_POSTFIELDS: one send, nothing libcurl would have to rewind), and the guard is
 * the pre-request callback: it runs each time a request is about to go out on a
 * connection, so a second call within one transfer is a re-send, and for a POST it aborts
 * that. The error then says sent = true: the outcome is unknown.
 * --------------------------------------------------------------------} */
static int before_request(void *ud, char *primary_ip, char *local_ip, int primary_port,
                          int local_port)
{
  sapwf_upload *u = ud;
  u->prereq_calls++;
  if (u->refuse_resend && u->prereq_calls > 1) {
    u->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

/* }==================================================================== */


/* The callbacks of one exchange and where they keep what they collect: the client's
 * response, re-send guard and errbuf for its two handles, a batch slot's for each of the
 * batch's handles (batch.c). Returns the first setopt failure. */
CURLcode sapwf_easy_callbacks(CURL *easy, sapwf_response *r, sapwf_upload *u, char *errbuf)
{
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_ERRORBUFFER, errbuf);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEFUNCTION, write_body);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEDATA, r);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERFUNCTION, collect_header);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERDATA, r);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQFUNCTION, before_request);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQDATA, u);
  return rc;
}


/* Policy and callbacks both handles share. The callbacks' data live in the client
 * userdata, whose address never changes. Returns the first setopt failure. */
CURLcode sapwf_easy_setup(sapwf_client *c, CURL *easy)
{
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_NOSIGNAL, 1L);       /* no SIGALRM in a host program */
  /* A redirect is an answer, never followed: the next hop would get the Bearer token. */
  SAPWF_SETOPT(rc, easy, CURLOPT_FOLLOWLOCATION, 0L);
  /* libcurl would squash "/a/../b" silently; path.c refuses dot segments instead, and
   * what is sent is what the caller wrote. */
  SAPWF_SETOPT(rc, easy, CURLOPT_PATH_AS_IS, 1L);
  SAPWF_SETOPT(rc, easy, CURLOPT_PROTOCOLS_STR, "http,https");
  SAPWF_SETOPT(rc, easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SAPWF_SETOPT(rc, easy, CURLOPT_TCP_KEEPALIVE, 1L);
  SAPWF_SETOPT(rc, easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  if (rc == CURLE_OK)
    rc = sapwf_easy_callbacks(easy, &c->response, &c->upload, c->errbuf);
  return rc;
}


/* Readies what the callbacks collect for a new exchange. */
void sapwf_exchange_reset(sapwf_response *r, sapwf_upload *u, char *errbuf, int refuse_resend)
{
  r->body.len = r->headers.len = 0;
  r->too_large = r->no_memory = 0;
  u->refuse_resend = refuse_resend;
  u->resend_refused = 0;
  u->prereq_calls = 0;
  errbuf[0] = '\0';
}


/* Runs one transfer; the answer lands in c->response, the status in *status. The request
 * is set up on easy already. Calls no Lua function. */
CURLcode sapwf_perform(sapwf_client *c, CURL *easy, int refuse_resend, long *status)
{
  CURLcode rc;
  sapwf_exchange_reset(&c->response, &c->upload, c->errbuf, refuse_resend);
  *status = 0;
  /* Within a request, every exchange (token fetch, request, renewal, replay) shares its
   * time: the request as a whole takes at most `timeout` (request() sets the deadline).
   * With none left, nothing is sent: a timeout that surely did not reach the server. */
  if (c->deadline > 0) {
    double left = c->deadline - sapwf_now();
    if (left <= 0)
      return CURLE_OPERATION_TIMEDOUT;
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, left * 1000 < 1 ? 1L : (long)(left * 1000));
  }
  rc = curl_easy_perform(easy);
  if (c->deadline > 0)                    /* batches copy the API handle: leave it as set */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
  if (rc == CURLE_OK)
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
  return rc;
}


/* Wipes each entry (one holds the Bearer token) and frees the list. */
void sapwf_free_headers(struct curl_slist *list)
{
  struct curl_slist *h;
  for (h = list; h != NULL; h = h->next)
    sapwf_wipe(h->data, strlen(h->data));
  curl_slist_free_all(list);
}


/* The API request headers, or NULL when out of memory. "Expect:" stops libcurl from
 * waiting for 100-continue; "Content-Type:" without a body stops it from sending its
 * default form type on an empty POST. */
struct curl_slist *sapwf_request_headers(const sapwf_client *c, int has_body)
{
  static const char prefix[] = "Authorization: Bearer ";
  size_t size = sizeof prefix + c->token_len;
  struct curl_slist *list = NULL, *last = NULL;
  char *auth = malloc(size);
  if (auth == NULL)
    return NULL;
  memcpy(auth, prefix, sizeof prefix - 1);
  memcpy(auth + sizeof prefix - 1, c->token, c->token_len);
  auth[size - 1] = '\0';
  list = last = curl_slist_append(NULL, auth);
  sapwf_free_secret(&auth, size);
  if (last != NULL)
    last = curl_slist_append(list, "Accept: application/json");
  if (last != NULL)
    last = curl_slist_append(list, has_body ? "Content-Type: application/json" : "Content-Type:");
  if (last != NULL)
    last = curl_slist_append(list, "Expect:");
  if (last == NULL) {
    sapwf_free_headers(list);
    return NULL;
  }
  return list;
}


/* The method and body of the next request on easy. POST, and any method with a body, send
 * body (body_len bytes, not copied: it must live until the transfer ends) with the headers;
 * other methods send no body. */
CURLcode sapwf_set_method(CURL *easy, int method, const char *body, size_t body_len)
{
  CURLcode rc = CURLE_OK;
  if (body != NULL || method == SAPWF_METHOD_POST) {
    SAPWF_SETOPT(rc, easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body != NULL ? body_len : 0));
    SAPWF_SETOPT(rc, easy, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    SAPWF_SETOPT(rc, easy, CURLOPT_CUSTOMREQUEST,
                 method == SAPWF_METHOD_POST ? (const char *)NULL : method_names[method]);
  } else {
    SAPWF_SETOPT(rc, easy, CURLOPT_HTTPGET, 1L);      /* resets any earlier POST state */
    SAPWF_SETOPT(rc, easy, CURLOPT_CUSTOMREQUEST,
                 method == SAPWF_METHOD_GET ? (const char *)NULL : method_names[method]);
  }
  return rc;
}


/* One request to api_url .. path with the cached token (see sapwf_set_method for the body).
 * Calls no Lua function and frees what it allocates before it returns. */
static CURLcode api_exchange(sapwf_client *c, int method, const char *path, size_t path_len,
                             const char *body, size_t body_len, long *status)
{
  CURL *easy = c->api_easy;
  CURLcode rc = CURLE_OK;
  struct curl_slist *headers;
  char *url = malloc(c->api_url_len + path_len + 1);
  if (url == NULL)
    return CURLE_OUT_OF_MEMORY;
  memcpy(url, c->api_url, c->api_url_len);
  memcpy(url + c->api_url_len, path, path_len);
  url[c->api_url_len + path_len] = '\0';
  c->errbuf[0] = '\0';
  SAPWF_SETOPT(rc, easy, CURLOPT_URL, url);           /* libcurl copies it */
  free(url);
  /* The header lists carry the token: made once per token, dropped with it (token.c). */
  headers = c->api_headers[body != NULL];
  if (headers == NULL)
    headers = c->api_headers[body != NULL] = sapwf_request_headers(c, body != NULL);
  if (headers == NULL)
    return CURLE_OUT_OF_MEMORY;
  SAPWF_SETOPT(rc, easy, CURLOPT_HTTPHEADER, headers);
  if (rc == CURLE_OK)
    rc = sapwf_set_method(easy, method, body, body_len);
  if (rc == CURLE_OK)
    rc = sapwf_perform(c, easy, method == SAPWF_METHOD_POST, status);
  /* The handle keeps no pointer to the headers (a new token frees them) or the body (a Lua
   * string) after this call. */
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
  return rc;
}


/* {====================================================================
 * Errors
 * ===================================================================== */

void sapwf_error_init(sapwf_error *e, const char *kind, const char *phase)
{
  e->kind = kind;
  e->phase = phase;
  e->message[0] = '\0';
  e->code[0] = '\0';
  e->curl_code = -1;
  e->status = 0;
  e->retry_after = -1;
  e->sent = 0;
}


static int is_tls_error(CURLcode rc)
{
  switch (rc) {
  case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED: case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_USE_SSL_FAILED: case CURLE_SSL_CLIENTCERT:
    return 1;
  default:
    return 0;
  }
}


/* Describes a failed transfer. `sent` tells the Lua layer whether a POST may have
 * reached the server. It is false only when that surely did not happen:
 * - the pre-request callback never ran: libcurl never had a connection ready to send on,
 *   so resolving, connecting, the proxy or the TLS handshake failed, or the connect
 *   timeout struck;
 * - or CURLINFO_REQUEST_SIZE is 0: not one byte of the request went out.
 * Everything else (a timeout while waiting for the answer, GOT_NOTHING, RECV_ERROR,
 * PARTIAL_FILE, a refused re-send) may have been acted on, so sent = true. */
void sapwf_error_from_curl(sapwf_client *c, CURL *easy, CURLcode rc, const char *phase,
                           sapwf_error *e)
{
  sapwf_error_from_exchange(easy, rc, &c->response, &c->upload, c->errbuf, phase, e);
}


/* The same for any exchange: the client's, or a batch slot's (batch.c). */
void sapwf_error_from_exchange(CURL *easy, CURLcode rc, const sapwf_response *r,
                               const sapwf_upload *u, const char *errbuf, const char *phase,
                               sapwf_error *e)
{
  const char *text = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  long request_size = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
  sapwf_error_init(e, "network", phase);
  e->curl_code = (long)rc;
  e->sent = u->resend_refused || (u->prereq_calls > 0 && request_size > 0);
  if (r->too_large) {
    e->kind = "server";
    snprintf(e->message, sizeof e->message, "response larger than max_response (%lu bytes)",
             (unsigned long)r->max);
  } else if (r->no_memory) {
    snprintf(e->message, sizeof e->message, "not enough memory for the response");
  } else if (u->resend_refused) {
    snprintf(e->message, sizeof e->message, "connection lost after the POST was sent; "
             "not sending it again (outcome unknown)");
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    e->kind = "timeout";
    snprintf(e->message, sizeof e->message, "%s", text);
  } else if (is_tls_error(rc)) {
    const char *hint = "";
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
        || rc == CURLE_SSL_ISSUER_ERROR)
      hint = " (check cafile / the CA)";
    else if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CLIENTCERT)
      hint = " (check cert / key)";
    e->kind = "tls";
    snprintf(e->message, sizeof e->message, "%s%s", text, hint);
  } else {
    snprintf(e->message, sizeof e->message, "%s", text);
  }
}


/* The one error funnel: pushes nil and the error table, returns 2. */
int sapwf_push_error(lua_State *L, const sapwf_error *e)
{
  luaL_pushfail(L);
  lua_createtable(L, 0, 7);                           /* nil, err */
  lua_pushstring(L, e->kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, e->message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, e->phase);
  lua_setfield(L, -2, "phase");
  lua_pushboolean(L, e->sent);
  lua_setfield(L, -2, "sent");
  if (e->curl_code >= 0) {
    lua_pushinteger(L, (lua_Integer)e->curl_code);
    lua_setfield(L, -2, "curl_code");
  }
  if (e->status > 0) {
    lua_pushinteger(L, (lua_Integer)e->status);
    lua_setfield(L, -2, "status");
  }
  if (e->code[0] != '\0') {
    lua_pushstring(L, e->code);
    lua_setfield(L, -2, "code");
  }
  if (e->retry_after >= 0) {
    lua_pushnumber(L, (lua_Number)e->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  return 2;
}

/* }==================================================================== */


/* Pushes the captured header lines of the last response as one string, names lower-cased
 * (core.header and core.headers read it, parse.c). One string instead of a table of them:
 * a call reads one or two headers, and a table of all costs a dozen strings per call. */
void sapwf_push_header_block(lua_State *L, const sapwf_buffer *b)
{
  lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
}


/* Checks the method, path and body arguments at arg, arg + 1, arg + 2 (raising, naming
 * the argument) and fills r; the strings stay on the Lua stack. */
void sapwf_check_request(lua_State *L, int arg, sapwf_request *r)
{
  size_t i;
  const char *problem;
  r->method = luaL_checkoption(L, arg, NULL, method_names);
  r->path = luaL_checklstring(L, arg + 1, &r->path_len);
  problem = sapwf_path_problem(r->path, r->path_len);
  if (problem != NULL)
    luaL_argerror(L, arg + 1, problem);
  for (i = 0; i < r->path_len; i++)
    luaL_argcheck(L, (unsigned char)r->path[i] > ' ' && r->path[i] != 0x7f, arg + 1,
                  "path must not contain spaces or control characters");
  r->body = NULL;
  r->body_len = 0;
  if (!lua_isnoneornil(L, arg + 2)) {
    if (lua_type(L, arg + 2) != LUA_TSTRING)
      luaL_argerror(L, arg + 2, lua_pushfstring(L, "string or nil expected, got %s",
                                                luaL_typename(L, arg + 2)));
    r->body = lua_tolstring(L, arg + 2, &r->body_len);
  }
}


/* The request of sapwf_client_request on a held client (sapwf_client_hold). Returns
 * the number of values pushed, or -1 when the client was closed during a token fetch (by a
 * finalizer): then nothing is sent. */
static int request(lua_State *L, sapwf_client *c, const sapwf_request *r)
{
  sapwf_error e;
  long status = 0;
  CURLcode rc;
  if (!sapwf_token_ensure(L, c, lua_upvalueindex(1), 0, &e))
    return sapwf_push_error(L, &e);
  if (c->closed)
    return -1;
  rc = api_exchange(c, r->method, r->path, r->path_len, r->body, r->body_len, &status);
  /* The server answered 401, so it did not act: replaying (even a POST) is safe. The token
   * it refused goes, so a failed fetch cannot leave it in use. Without auto_token the 401
   * is the answer: the token's owner renews it, once for all its users; so it is when a
   * fresh token was just refused too (sapwf_token_may_renew). */
  if (rc == CURLE_OK && status == 401 && c->auto_token && sapwf_token_may_renew(c)) {
    sapwf_token_drop(c);
    if (!sapwf_token_ensure(L, c, lua_upvalueindex(1), 1, &e))
      return sapwf_push_error(L, &e);
    if (c->closed)
      return -1;
    rc = api_exchange(c, r->method, r->path, r->path_len, r->body, r->body_len, &status);
    if (rc == CURLE_OK && status == 401)
      sapwf_token_refused(c);             /* a fresh token refused: see token.c */
  }
  if (rc != CURLE_OK) {
    sapwf_error_from_curl(c, c->api_easy, rc, "request", &e);
    sapwf_buffer_free(&c->response.body);
    sapwf_buffer_free(&c->response.headers);
    return sapwf_push_error(L, &e);
  }
  luaL_checkstack(L, 6, "too many nested calls");
  lua_pushinteger(L, (lua_Integer)status);
  lua_pushlstring(L, c->response.body.data != NULL ? c->response.body.data : "",
                  c->response.body.len);
  sapwf_push_header_block(L, &c->response.headers);   /* status, body, headers */
  sapwf_buffer_reuse(&c->response.body);
  sapwf_buffer_reuse(&c->response.headers);
  return 3;
}


/***
 * One API call. Gets a token first if needed; on a 401 gets a new one and replays once
 * (with auto_token = false: uses the token given to set_token, and returns a 401).
 * @function Client:request
 * @tparam string method GET POST PUT PATCH DELETE
 * @tparam string path starting with "/", appended to api_url as is
 * @tparam[opt] string body sent as application/json
 * @treturn[1] integer status
 * @treturn[1] string body
 * @treturn[1] string the header lines, names lower-cased: read them with header or headers
 * @treturn[2] nil
 * @treturn[2] table err
 */
int sapwf_client_request(lua_State *L)
{
  sapwf_request r;
  sapwf_client *c = sapwf_check_open(L, 1);
  int n;
  double outer = c->deadline;             /* a call from a finalizer inside another */
  sapwf_check_request(L, 2, &r);
  sapwf_client_hold(c);
  c->deadline = sapwf_now() + c->timeout;
  n = request(L, c, &r);
  c->deadline = outer;
  /* A close during the call took effect now. When the answer had come it is returned; a
   * call that never went out raises as any call on a closed client. */
  if (!sapwf_client_unhold(L, c) && n < 0)
    return luaL_error(L, "attempt to use a closed sapwf client");
  return n;
}
