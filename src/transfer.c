/* One HTTP exchange on an easy handle: request headers, body upload, response buffer,
 * header capture, CURLcode to error mapping; and client:request. MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
enum { METHOD_GET, METHOD_POST, METHOD_PUT, METHOD_PATCH, METHOD_DELETE };


/* {====================================================================
 * Buffers and libcurl callbacks. The callbacks never call Lua.
 * ===================================================================== */

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
  for (; i < r->headers.len && r->headers.data[i] != ':'; i++) {
    char ch = r->headers.data[i];
    if (ch >= 'A' && ch <= 'Z')
      r->headers.data[i] = (char)(ch - 'A' + 'a');
  }
  return n;
}


static size_t read_body(char *dst, size_t size, size_t nitems, void *ud)
{
  sapwf_upload *u = ud;
  size_t n = size * nitems;
  if (n > u->len - u->pos)
    n = u->len - u->pos;
  if (n > 0)
    memcpy(dst, u->data + u->pos, n);
  u->pos += n;
  return n;
}


/* {--------------------------------------------------------------------
 * No silent second POST. When a reused keep-alive connection turns out dead before any
 * answer byte arrived, libcurl sends the request again on a new connection, by itself.
 * For GET, PUT, DELETE that is fine (idempotent), but a POST that reached the server
 * before the connection died could start a second workflow instance. Two guards:
 * - the seek callback refuses to rewind a POST body, so libcurl fails with
 *   CURLE_SEND_FAIL_REWIND instead of re-sending it;
 * - libcurl only rewinds when body bytes went out; a POST whose body had not gone out
 *   yet (or is empty) would be re-sent without a rewind. The pre-request callback runs
 *   each time a request is about to go out on a connection, so a second call within one
 *   perform is a re-send, and it aborts that.
 * Either way the error says sent = true: the outcome is unknown.
 * --------------------------------------------------------------------} */
static int seek_body(void *ud, curl_off_t offset, int origin)
{
  sapwf_upload *u = ud;
  if (u->refuse_resend) {
    u->resend_refused = 1;
    return CURL_SEEKFUNC_FAIL;
  }
  if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len)
    return CURL_SEEKFUNC_FAIL;
  u->pos = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}


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


/* Policy and callbacks both handles share. The callbacks' data live in the client
 * userdata, whose address never changes. Returns the first setopt failure. */
CURLcode sapwf_easy_setup(sapwf_client *c, CURL *easy)
{
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_NOSIGNAL, 1L);       /* no SIGALRM in a host program */
  SAPWF_SETOPT(rc, easy, CURLOPT_FOLLOWLOCATION, 0L);
  SAPWF_SETOPT(rc, easy, CURLOPT_PROTOCOLS_STR, "http,https");
  SAPWF_SETOPT(rc, easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SAPWF_SETOPT(rc, easy, CURLOPT_TCP_KEEPALIVE, 1L);
  SAPWF_SETOPT(rc, easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  SAPWF_SETOPT(rc, easy, CURLOPT_ERRORBUFFER, c->errbuf);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEFUNCTION, write_body);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEDATA, &c->response);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERFUNCTION, collect_header);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERDATA, &c->response);
  SAPWF_SETOPT(rc, easy, CURLOPT_READFUNCTION, read_body);
  SAPWF_SETOPT(rc, easy, CURLOPT_READDATA, &c->upload);
  SAPWF_SETOPT(rc, easy, CURLOPT_SEEKFUNCTION, seek_body);
  SAPWF_SETOPT(rc, easy, CURLOPT_SEEKDATA, &c->upload);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQFUNCTION, before_request);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQDATA, &c->upload);
  return rc;
}


/* Runs one transfer; the answer lands in c->response, the status in *status. The body
 * to upload, if any, is already in c->upload. Calls no Lua function. */
CURLcode sapwf_perform(sapwf_client *c, CURL *easy, int refuse_resend, long *status)
{
  CURLcode rc;
  c->response.body.len = c->response.headers.len = 0;
  c->response.too_large = c->response.no_memory = 0;
  c->upload.pos = 0;
  c->upload.refuse_resend = refuse_resend;
  c->upload.resend_refused = 0;
  c->upload.prereq_calls = 0;
  c->errbuf[0] = '\0';
  rc = curl_easy_perform(easy);
  *status = 0;
  if (rc == CURLE_OK)
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
  return rc;
}


/* Wipes each entry (one holds the Bearer token) and frees the list. */
static void free_headers(struct curl_slist *list)
{
  struct curl_slist *h;
  for (h = list; h != NULL; h = h->next)
    sapwf_wipe(h->data, strlen(h->data));
  curl_slist_free_all(list);
}


/* The API request headers, or NULL when out of memory. "Expect:" stops libcurl from
 * waiting for 100-continue; "Content-Type:" without a body stops it from sending its
 * default form type on an empty POST. */
static struct curl_slist *request_headers(const sapwf_client *c, int has_body)
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
    free_headers(list);
    return NULL;
  }
  return list;
}


/* One request to api_url .. path with the cached token. POST, and any method with a body,
 * upload through read_body (see the guards above); other methods send no body. Calls no
 * Lua function and frees what it allocates before it returns. */
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
  headers = request_headers(c, body != NULL);
  if (headers == NULL)
    return CURLE_OUT_OF_MEMORY;
  SAPWF_SETOPT(rc, easy, CURLOPT_HTTPHEADER, headers);
  if (body != NULL || method == METHOD_POST) {
    SAPWF_SETOPT(rc, easy, CURLOPT_POST, 1L);
    SAPWF_SETOPT(rc, easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    SAPWF_SETOPT(rc, easy, CURLOPT_CUSTOMREQUEST,
                 method == METHOD_POST ? (const char *)NULL : method_names[method]);
  } else {
    SAPWF_SETOPT(rc, easy, CURLOPT_HTTPGET, 1L);      /* resets any earlier POST state */
    SAPWF_SETOPT(rc, easy, CURLOPT_CUSTOMREQUEST,
                 method == METHOD_GET ? (const char *)NULL : method_names[method]);
  }
  c->upload.data = body;
  c->upload.len = body != NULL ? body_len : 0;
  if (rc == CURLE_OK)
    rc = sapwf_perform(c, easy, method == METHOD_POST, status);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  free_headers(headers);
  c->upload.data = NULL;
  c->upload.len = 0;
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
  const char *text = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
  long request_size = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
  sapwf_error_init(e, "network", phase);
  e->curl_code = (long)rc;
  e->sent = c->upload.resend_refused || (c->upload.prereq_calls > 0 && request_size > 0);
  if (c->response.too_large) {
    e->kind = "server";
    snprintf(e->message, sizeof e->message, "response larger than max_response (%lu bytes)",
             (unsigned long)c->response.max);
  } else if (c->response.no_memory) {
    snprintf(e->message, sizeof e->message, "not enough memory for the response");
  } else if (c->upload.resend_refused) {
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
  return 2;
}

/* }==================================================================== */


/* Sets t[name] = value for every "name: value" line of the captured headers; the table
 * is on top and stays there. The status line, the blank last line and folded
 * continuation lines are skipped. */
static void set_headers(lua_State *L, const sapwf_buffer *b)
{
  const char *p, *end;
  if (b->data == NULL)
    return;
  p = b->data;
  end = b->data + b->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol != NULL ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon != NULL && colon > p && *p != ' ' && *p != '\t'
        && !(line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
      const char *value = colon + 1, *value_end = line_end;
      while (value < value_end && (*value == ' ' || *value == '\t'))
        value++;
      while (value_end > value
             && (value_end[-1] == '\r' || value_end[-1] == ' ' || value_end[-1] == '\t'))
        value_end--;
      lua_pushlstring(L, p, (size_t)(colon - p));     /* t, name */
      lua_pushlstring(L, value, (size_t)(value_end - value));  /* t, name, value */
      lua_rawset(L, -3);                              /* t */
    }
    p = line_end < end ? line_end + 1 : end;
  }
}


/***
 * One API call. Gets a token first if needed; on a 401 gets a new one and replays once.
 * @function Client:request
 * @tparam string method GET POST PUT PATCH DELETE
 * @tparam string path starting with "/", appended to api_url as is
 * @tparam[opt] string body sent as application/json
 * @treturn[1] integer status
 * @treturn[1] string body
 * @treturn[1] table headers, lower-case names
 * @treturn[2] nil
 * @treturn[2] table err
 */
int sapwf_client_request(lua_State *L)
{
  sapwf_client *c = sapwf_check_open(L, 1);
  int method = luaL_checkoption(L, 2, NULL, method_names);
  size_t path_len, body_len = 0, i;
  const char *path = luaL_checklstring(L, 3, &path_len);
  const char *body = NULL;
  sapwf_error e;
  long status = 0;
  CURLcode rc;
  luaL_argcheck(L, path[0] == '/', 3, "path must start with '/'");
  for (i = 0; i < path_len; i++)
    luaL_argcheck(L, (unsigned char)path[i] > ' ' && path[i] != 0x7f, 3,
                  "path must not contain spaces or control characters");
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) != LUA_TSTRING)
      return luaL_argerror(L, 4, lua_pushfstring(L, "string or nil expected, got %s",
                                                 luaL_typename(L, 4)));
    body = lua_tolstring(L, 4, &body_len);
  }

  if (!sapwf_token_ensure(L, c, lua_upvalueindex(1), 0, &e))
    return sapwf_push_error(L, &e);
  rc = api_exchange(c, method, path, path_len, body, body_len, &status);
  /* The server answered 401, so it did not act: replaying (even a POST) is safe. */
  if (rc == CURLE_OK && status == 401) {
    if (!sapwf_token_ensure(L, c, lua_upvalueindex(1), 1, &e))
      return sapwf_push_error(L, &e);
    rc = api_exchange(c, method, path, path_len, body, body_len, &status);
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
  lua_newtable(L);                                    /* status, body, headers */
  set_headers(L, &c->response.headers);
  sapwf_buffer_free(&c->response.body);
  sapwf_buffer_free(&c->response.headers);
  return 3;
}
