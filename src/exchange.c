/* One HTTP exchange on an easy handle: request headers, body upload, response buffer,
 * header capture, the re-send guard, the deadline, and what a failure was. No Lua here:
 * the layers above (token.c, client.c, batch.c) push what an exchange collected.
 * MIT licence, see LICENSE. */
#include "exchange.h"
#include "clock.h"
#include "headers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In the order of enum sapwf_method (sapwf.h). */
const char *const sapwf_method_names[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};


/* {====================================================================
 * Buffers and libcurl callbacks. The callbacks never call Lua.
 * ===================================================================== */

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
    /* max is at most SIZE_MAX / 2 (options.c), so doubling cannot overflow. */
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
  size_t n = size * nmemb;
  if (r->sink != NULL) {
    if (n > 0 && fwrite(p, 1, n, r->sink) != n) {
      r->sink_errno = errno != 0 ? errno : EIO;
      return 0;                             /* libcurl aborts: CURLE_WRITE_ERROR */
    }
    return n;
  }
  return buffer_append(r, &r->body, p, n) ? n : 0;
}


/* Set by sapwf_exchange_interrupt (from the command line's signal handler): transfers to a
 * file, and reads, end. Process-wide, as the signal is. */
static volatile sig_atomic_t interrupt_sinks;

void sapwf_exchange_interrupt(int on)
{
  interrupt_sinks = on != 0;
}


/* libcurl's progress callback, on only while an answer may go to a file or a GET is under
 * way (perform): a non-zero return ends the transfer. libcurl calls it at least once a
 * second, also while nothing arrives. A request that may change something is never ended
 * halfway: its outcome would be unknown. */
static int check_interrupt(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
  sapwf_response *r = ud;
  (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
  if (interrupt_sinks && (r->sink_path != NULL || r->reading)) {
    r->interrupted = 1;
    return 1;
  }
  return 0;
}


/* Closes the sink file, if open. Returns 0 when a close failed (its errno kept): the data
 * may not all be on disk. */
int sapwf_exchange_close_sink(sapwf_response *r)
{
  FILE *f = r->sink;
  r->sink = NULL;
  if (f != NULL && fclose(f) != 0) {
    if (r->sink_errno == 0)
      r->sink_errno = errno != 0 ? errno : EIO;
    return 0;
  }
  return 1;
}


/* At a status line: where the body that follows goes. A 2xx with a sink path goes to that
 * file, opened anew and so emptied (a 1xx before, or libcurl's own retry, leaves nothing
 * behind); anything else to the body buffer. Returns 0 when the file cannot be opened. */
static int route_body(sapwf_response *r, const char *line, size_t n)
{
  size_t i = 5;
  int status = 0, digits = 0;
  if (r->sink_path == NULL)
    return 1;
  while (i < n && line[i] != ' ')                 /* "HTTP/1.1 200 OK", "HTTP/2 200" */
    i++;
  for (i++; i < n && digits < 3 && line[i] >= '0' && line[i] <= '9'; i++, digits++)
    status = status * 10 + (line[i] - '0');
  if (!sapwf_exchange_close_sink(r))
    return 0;
  r->sink_used = 0;
  if (digits == 3 && status >= 200 && status < 300) {
    errno = 0;
    r->sink = fopen(r->sink_path, "wb");
    if (r->sink == NULL) {
      r->sink_errno = errno != 0 ? errno : EIO;
      return 0;
    }
    r->sink_used = 1;
  }
  return 1;
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
    if (!route_body(r, p, n))
      return 0;
    return buffer_append(r, &r->headers, p, n) ? n : 0;
  }
  i = r->headers.len;
  if (!buffer_append(r, &r->headers, p, n))
    return 0;
  sapwf_header_lower_name(r->headers.data + i, n);
  return n;
}


/* {--------------------------------------------------------------------
 * No silent second sending. When a reused keep-alive connection turns out dead before any
 * answer byte arrived, libcurl sends the request again on a new connection, by itself (so
 * it does for an HTTP/2 stream the server refused). For GET and PUT that is fine
 * (idempotent), but a POST that reached the server before the connection died could start
 * a second workflow instance, and a PATCH or DELETE complete a task or undeploy a second
 * time (then answering 422 or 404 for what the first sending did). The body goes out from
 * memory with the headers (CURLOPT_POSTFIELDS: one send, nothing libcurl would have to
 * rewind), and the guard is the pre-request callback: it runs each time a request is about
 * to go out on a connection, so a second call within one transfer is a re-send, and for
 * those methods it aborts that. The error then says sent = true: the outcome is unknown,
 * and send.lua sends an idempotent PATCH (cancel, update_context, ...) again itself.
 * --------------------------------------------------------------------} */

int sapwf_refuses_resend(int method)
{
  return method != SAPWF_METHOD_GET && method != SAPWF_METHOD_PUT;
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


/* The callbacks of one easy handle and where they keep what they collect: x (the
 * client's exchange for its two handles, a batch slot's for each of the batch's handles).
 * Returns the first setopt failure. */
CURLcode sapwf_exchange_callbacks(CURL *easy, sapwf_exchange *x)
{
  CURLcode rc = CURLE_OK;
  SAPWF_SETOPT(rc, easy, CURLOPT_ERRORBUFFER, x->errbuf);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEFUNCTION, write_body);
  SAPWF_SETOPT(rc, easy, CURLOPT_WRITEDATA, &x->response);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERFUNCTION, collect_header);
  SAPWF_SETOPT(rc, easy, CURLOPT_HEADERDATA, &x->response);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQFUNCTION, before_request);
  SAPWF_SETOPT(rc, easy, CURLOPT_PREREQDATA, &x->upload);
  SAPWF_SETOPT(rc, easy, CURLOPT_XFERINFOFUNCTION, check_interrupt);
  SAPWF_SETOPT(rc, easy, CURLOPT_XFERINFODATA, &x->response);
  return rc;
}


/* The policy every handle of sapwf.core follows, and the callbacks into x. Returns the
 * first setopt failure. */
CURLcode sapwf_exchange_setup(CURL *easy, sapwf_exchange *x)
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
    rc = sapwf_exchange_callbacks(easy, x);
  return rc;
}


/* Readies what the callbacks collect for a new exchange. */
void sapwf_exchange_reset(sapwf_exchange *x, int refuse_resend)
{
  x->response.body.len = x->response.headers.len = 0;
  x->response.too_large = x->response.no_memory = 0;
  x->response.sink_errno = x->response.sink_used = x->response.interrupted = 0;
  x->upload.refuse_resend = refuse_resend;
  x->upload.resend_refused = 0;
  x->upload.prereq_calls = 0;
  x->errbuf[0] = '\0';
}


/* Runs one transfer on easy (its request set up already); the answer lands in x, the
 * status in *status. */
CURLcode sapwf_exchange_perform(sapwf_exchange *x, CURL *easy, int refuse_resend, long *status)
{
  CURLcode rc;
  int interruptible;
  sapwf_exchange_reset(x, refuse_resend);
  *status = 0;
  /* Within a request, every exchange (token fetch, request, renewal, replay) shares its
   * time: the request as a whole takes at most `timeout` (the caller sets the deadline).
   * With none left, nothing is sent: a timeout that surely did not reach the server. */
  if (x->deadline > 0) {
    double left = x->deadline - sapwf_now();
    if (left <= 0)
      return CURLE_OPERATION_TIMEDOUT;
    if (left > SAPWF_MAX_SECONDS)         /* math.huge: a cast beyond long is undefined */
      left = SAPWF_MAX_SECONDS;
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, left * 1000 < 1 ? 1L : (long)(left * 1000));
  }
  /* The progress callback only where a signal may end the transfer: no call per chunk
   * else (a start's, the hot path). */
  interruptible = x->response.sink_path != NULL || x->response.reading;
  if (interruptible)
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  rc = curl_easy_perform(easy);
  x->response.reading = 0;                /* the caller's, for this transfer only */
  if (interruptible)
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 1L);
  if (!sapwf_exchange_close_sink(&x->response) && rc == CURLE_OK)
    rc = CURLE_WRITE_ERROR;               /* the file's end may not be on disk */
  if (x->deadline > 0)                    /* batches copy the API handle: leave it as set */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(x->timeout * 1000));
  if (rc == CURLE_OK)
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
  return rc;
}


/* Frees (and wipes) what the exchange collected. */
void sapwf_exchange_free(sapwf_exchange *x)
{
  sapwf_buffer_free(&x->response.body);
  sapwf_buffer_free(&x->response.headers);
}


/* Wipes each entry (one holds the Bearer token) and frees the list. */
void sapwf_free_headers(struct curl_slist *list)
{
  struct curl_slist *h;
  for (h = list; h != NULL; h = h->next)
    sapwf_wipe(h->data, strlen(h->data));
  curl_slist_free_all(list);
}


/* The API request headers, with the lines of `extra` (the client's `headers` option) at the
 * end, or NULL when out of memory. "Expect:" stops libcurl from waiting for 100-continue;
 * "Content-Type:" without a body stops it from sending its default form type on an empty
 * POST. */
struct curl_slist *sapwf_request_headers(const char *token, size_t token_len, int has_body,
                                         const char *accept, const struct curl_slist *extra)
{
  static const char prefix[] = SAPWF_BEARER_LINE;
  size_t size = sizeof prefix + token_len;
  struct curl_slist *list = NULL, *last = NULL;
  char *auth = malloc(size);
  if (auth == NULL)
    return NULL;
  memcpy(auth, prefix, sizeof prefix - 1);
  memcpy(auth + sizeof prefix - 1, token, token_len);
  auth[size - 1] = '\0';
  list = last = curl_slist_append(NULL, auth);
  sapwf_free_secret(&auth, size);
  if (last != NULL && accept == NULL) {
    last = curl_slist_append(list, "Accept: application/json");
  } else if (last != NULL) {
    /* A caller's Accept (checked by sapwf_header_text_ok before it came here). */
    size_t len = strlen(accept);
    char *line = malloc(sizeof "Accept: " + len);
    if (line == NULL) {
      last = NULL;
    } else {
      memcpy(line, "Accept: ", sizeof "Accept: " - 1);
      memcpy(line + sizeof "Accept: " - 1, accept, len + 1);
      last = curl_slist_append(list, line);
      free(line);
    }
  }
  if (last != NULL)
    last = curl_slist_append(list, has_body ? "Content-Type: application/json" : "Content-Type:");
  if (last != NULL)
    last = curl_slist_append(list, "Expect:");
  for (; extra != NULL && last != NULL; extra = extra->next)
    last = curl_slist_append(list, extra->data);
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
                 method == SAPWF_METHOD_POST ? (const char *)NULL : sapwf_method_names[method]);
  } else {
    SAPWF_SETOPT(rc, easy, CURLOPT_HTTPGET, 1L);      /* resets any earlier POST state */
    SAPWF_SETOPT(rc, easy, CURLOPT_CUSTOMREQUEST,
                 method == SAPWF_METHOD_GET ? (const char *)NULL : sapwf_method_names[method]);
  }
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
 * PARTIAL_FILE, a refused re-send) may have been acted on, so sent = true. A connection lost
 * after sending reads "connection lost after the request was sent" whichever way libcurl
 * met it. */
void sapwf_error_from_exchange(CURL *easy, CURLcode rc, const sapwf_exchange *x,
                               const char *phase, sapwf_error *e)
{
  const sapwf_response *r = &x->response;
  const sapwf_upload *u = &x->upload;
  const char *text = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
  long request_size = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
  sapwf_error_init(e, "network", phase);
  e->curl_code = (long)rc;
  e->sent = u->resend_refused || (u->prereq_calls > 0 && request_size > 0);
  if (r->sink_errno != 0) {
    e->kind = "io";
    snprintf(e->message, sizeof e->message, "cannot write the answer to %.200s: %s",
             r->sink_path != NULL ? r->sink_path : "the file", strerror(r->sink_errno));
  } else if (r->interrupted && r->sink_path != NULL) {
    e->kind = "interrupted";
    snprintf(e->message, sizeof e->message, "interrupted: the answer was not written to the "
             "end");
  } else if (r->interrupted) {
    e->kind = "interrupted";
    snprintf(e->message, sizeof e->message, "interrupted before the whole answer came");
  } else if (r->too_large) {
    e->kind = "server";
    snprintf(e->message, sizeof e->message, "response larger than max_response (%lu bytes)",
             (unsigned long)r->max);
  } else if (r->no_memory) {
    snprintf(e->message, sizeof e->message, "not enough memory for the response");
  } else if (u->resend_refused) {
    snprintf(e->message, sizeof e->message, "connection lost after the request was sent "
             "(a reused connection that had died; not sending it again)");
  } else if (e->sent && (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR)) {
    /* The same loss as the one above, met on a fresh connection or before libcurl thought of
     * sending again: said in the same words, with libcurl's own. */
    snprintf(e->message, sizeof e->message, "connection lost after the request was sent (%s)",
             text);
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

/* }==================================================================== */
