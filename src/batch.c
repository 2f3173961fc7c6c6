/* A batch: many API requests in flight at once on one libcurl multi handle, with the
 * client's token. lua/sapwf/batch.lua (wf:map, wf:start_many) runs on it:
 *
 *   local b = core_client:batch(size)        -- `size` slots, each one request at a time
 *   b:submit(slot, method, path [, body [, deadline]])  -- as client:request takes them
 *   slot, status, body, headers, gen, deadline = b:wait([timeout])  -- the next one done
 *   slot, nil, err = b:wait()                -- ... or failed as client:request fails
 *   b:close()                                -- also __gc and __close
 *
 * Each slot has an easy handle made once, a duplicate of the client's API handle (so the
 * same connect timeout, TLS settings and policy), with the same callbacks and re-send guard
 * as client:request (exchange.c), collecting into the slot's own exchange. Slots join the Lua
 * state's share (share.c), so a batch uses the connections earlier calls left open, and the
 * connections it opens serve later calls. With HTTP/2 (https, when the server offers it)
 * the requests are multiplexed on one connection; with HTTP/1.1 each request in flight has
 * a kept-alive connection of its own.
 *
 * Until the first answer says which (its HTTP version), at most STREAMS requests go out;
 * the others wait in their slots (deferred). libcurl, once the first connection turned out
 * to multiplex, would otherwise open a connection, and pay a TLS handshake, for every
 * request beyond that connection's streams, all at once: 158 connections for 256 requests
 * where 3 serve. Once the batch knows it multiplexes, it caps the connections to its host
 * (CURLMOPT_MAX_HOST_CONNECTIONS); over HTTP/1.1 it leaves them uncapped.
 *
 * The time a request may take (the client's `timeout`) is the batch's to enforce, not
 * libcurl's: libcurl checks a transfer's timeout before it reads, so after a program spent
 * longer than that between waits (a slow next_item, on_result or fn) every start in flight
 * would fail as a timeout of unknown outcome, its answer unread in the socket, although the
 * service had answered long before. wait reads first and only then fails what is still
 * unanswered past its deadline (expire), with the message libcurl gives. A request's time
 * starts at the first curl_multi_perform after it entered the multi handle, when it can
 * go out (libcurl's own clock started there too): Lua may run between the two.
 *
 * No Lua function runs while libcurl does: wait drives curl_multi_perform and
 * curl_multi_poll. A raise (out of memory) leaves the multi handle consistent; close, or
 * __gc, frees everything.
 *
 * The token: every request carries the client's cached token; submit fetches one when it is
 * missing or near expiry (decoded by lua-cjson under lua_pcall, as token.c does), once for
 * the whole batch. A 401 is an answer like any other: wait returns it with the generation
 * of the token the request carried, and the Lua layer renews the token (client:renew, once
 * for all the requests that carried the old one) and submits the request again. When a
 * fetch fails, the requests that need a token in the next second fail with that error
 * without a new fetch: a failing endpoint is asked about once a second, not once per item.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAPWF_BATCH_MT "sapwf.core.Batch"
#define MAX_SLOTS 1024
#define POLL_MS 1000                      /* longest single wait; libcurl may end it sooner */
#define TOKEN_HOLD 1.0                    /* seconds a failed token fetch is not repeated */
#define STREAMS 100                       /* requests one HTTP/2 connection carries at once */

enum { SLOT_IDLE, SLOT_RUNNING, SLOT_DONE, SLOT_DEFERRED };
enum { PROTOCOL_UNKNOWN, PROTOCOL_SERIAL, PROTOCOL_MULTIPLEX };

typedef struct slot {
  CURL *easy;
  int state;
  int method;
  int has_body;
  int failed;                             /* done with `error`, not with an answer */
  long status;
  double deadline;                        /* when its time is up (sapwf_now); 0: never */
  double given;                           /* the deadline submit was given; 0: none */
  unsigned long sent_gen;                 /* token generation the request carried */
  struct curl_slist *headers;             /* with the Bearer token of headers_gen */
  unsigned long headers_gen;
  int headers_body;                       /* the list says Content-Type: application/json */
  char *url;
  size_t url_cap;
  char *body;
  size_t body_len, body_cap;
  sapwf_exchange x;                       /* what the slot's handle collects */
  sapwf_error error;
} slot;

typedef struct batch {
  sapwf_client *client;                   /* kept alive by the batch's user value */
  sapwf_share *share;
  CURLM *multi;
  slot *slots;
  int size;
  int running;                            /* slots whose easy handle is in the multi */
  int deferred;                           /* slots ready to go out once the protocol is known */
  int protocol;                           /* PROTOCOL_*: what the first answer came over */
  int *done;                              /* ring of finished slot indices */
  int *fresh;                             /* slots entered since the last perform: their */
  int fresh_count;                        /* time starts with the next one (start_clocks) */
  int done_head, done_count;
  int token_failed;                       /* token_error happened at token_failed_at */
  double token_failed_at;
  unsigned long token_failed_gen;         /* the client's token generation then */
  sapwf_error token_error;
  int closed;
  int busy;                               /* in submit or wait: see hold */
  int close_pending;                      /* closed by a finalizer during one of them */
  int counted;                            /* in its client's `batches` (till released) */
} batch;


/* Makes *p hold at least n bytes. 1, or 0 when out of memory (*p unchanged). */
static int reserve(char **p, size_t *cap, size_t n)
{
  char *q;
  if (n <= *cap)
    return 1;
  q = realloc(*p, n);
  if (q == NULL)
    return 0;
  *p = q;
  *cap = n;
  return 1;
}


static batch *check_batch(lua_State *L)
{
  batch *b = luaL_checkudata(L, 1, SAPWF_BATCH_MT);
  if (b->closed)
    luaL_error(L, "attempt to use a closed sapwf batch");
  return b;
}


static void release(lua_State *L, batch *b);

/* Requests the batch was given and wait has not handed over yet: in flight, waiting for
 * the protocol (deferred) or done. */
static int owed(const batch *b)
{
  return b->running + b->deferred + b->done_count;
}


/* The state checks of submit and wait, the one place their state errors are raised.
 *
 * A closed client takes no new request, but closing it abandons nothing a batch was given
 * before: each slot's handle, headers and body are the batch's own, so what was submitted
 * goes out and wait hands it over. Only then, with nothing owed, does wait raise the
 * closed error, where it would return nothing: what is owed is never dropped, and a
 * program is not left waiting on a client that can send no more.
 *
 * submit and wait run their part that may run Lua (a token fetch decodes with cjson; wait's
 * pushes may collect) with the batch and its client held, as a protected call (client.c
 * says why): a finalizer may close either meanwhile, and the close waits for the call's
 * end. Any other call of the batch from a finalizer is refused before it touches anything
 * (a nested wait would take the head of the finished queue a second time and lose an
 * answer). The batch's own token fetch goes to token.c, not through the client's methods,
 * so the hold does not refuse it.
 *
 * While its client is busy (a finalizer runs inside a client call, or inside a call of
 * another batch of it), submit is refused: its token fetch and its headers use the
 * client's token, token handle and buffers, which that call is using. wait is not: it
 * touches only what is the batch's own (its multi handle, its slots' handles, which collect
 * into the slots' own buffers, with the headers, URL and body submit copied, and its
 * finished queue); of the client it reads the timeout, which never changes, and fetches no
 * token. Its hold nests (busy counts; the deadline it saves and restores is one it never
 * sets), so the outer call's deadline and any close deferred meanwhile are as they were.
 * No libcurl call is under way when a finalizer runs (no Lua runs while libcurl does), so
 * its perform never meets the outer call's inside libcurl or the share. What it pops is
 * its own batch's, handed to the finalizer that asked for it: nothing is lost. The only
 * cost is time: the outer call waits while the finalizer does. */
static void refuse_busy(lua_State *L, const batch *b)
{
  if (b->busy > 0)
    luaL_error(L, "sapwf: batch is busy with another call (a finalizer called it during "
               "a call)");
}


static void check_idle(lua_State *L, const batch *b, int waiting)
{
  if (b->closed)
    luaL_error(L, "attempt to use a closed sapwf batch");
  refuse_busy(L, b);
  if (b->client->closed && !(waiting && owed(b) > 0))
    luaL_error(L, "attempt to use a closed sapwf client");
  if (!waiting)
    sapwf_client_refuse_busy(L, b->client);
}


/* Runs what sapwf_push_held pushed, held (sapwf_client_call holds the client); a close of
 * the batch deferred meanwhile takes effect after it. Raises what the call raised; returns
 * the number of its results, above base. */
static int call_held(lua_State *L, batch *b, int base)
{
  int status;
  b->busy++;
  status = sapwf_client_call(L, b->client);
  b->busy--;
  if (b->busy == 0 && b->close_pending)
    release(L, b);
  if (status != LUA_OK)
    return lua_error(L);
  return lua_gettop(L) - base;
}


/* {====================================================================
 * Slots: start, finish, fail
 * ===================================================================== */

static void push_done(batch *b, slot *s)
{
  s->state = SLOT_DONE;
  b->done[(b->done_head + b->done_count) % b->size] = (int)(s - b->slots);
  b->done_count++;
}


static void fail(batch *b, slot *s, const sapwf_error *e)
{
  s->error = *e;
  s->failed = 1;
  push_done(b, s);
}


/* A failure before anything was sent (libcurl could not take the request). */
static void fail_setup(batch *b, slot *s, const char *message, long curl_code)
{
  sapwf_error e;
  sapwf_error_init(&e, "network", "request");
  strncpy(e.message, message, sizeof e.message - 1);
  e.message[sizeof e.message - 1] = '\0';
  e.curl_code = curl_code;
  fail(b, s, &e);
}


/* Hands a slot whose request is ready to the multi handle. Its time starts when the next
 * perform can send it (start_clocks): not while it waited for a token or for the protocol
 * (deferred), which the requests in flight before it bound, nor while Lua runs before that
 * perform. A deadline submit was given (a replay after a 401 shares the first sending's)
 * holds as it is; one already passed sends nothing, as client:request does. */
static void enter(batch *b, slot *s)
{
  double now = sapwf_now();
  CURLMcode mc;
  if (s->given > 0 && s->given <= now) {
    sapwf_error e;
    sapwf_error_from_exchange(s->easy, CURLE_OPERATION_TIMEDOUT, &s->x, "request", &e);
    e.sent = 0;
    fail(b, s, &e);
    return;
  }
  mc = curl_multi_add_handle(b->multi, s->easy);
  if (mc != CURLM_OK) {
    fail_setup(b, s, curl_multi_strerror(mc), -1);
    return;
  }
  s->state = SLOT_RUNNING;
  b->running++;
  s->deadline = s->given;
  if (s->given <= 0 && b->client->x.timeout > 0 && b->fresh_count < b->size)
    b->fresh[b->fresh_count++] = (int)(s - b->slots);
}


/* Starts the time of the requests entered since the last perform, which is about to run. */
static void start_clocks(batch *b)
{
  double deadline = sapwf_now() + b->client->x.timeout;
  while (b->fresh_count > 0) {
    slot *s = &b->slots[b->fresh[--b->fresh_count]];
    if (s->state == SLOT_RUNNING && s->deadline <= 0)
      s->deadline = deadline;
  }
}


/* Lets deferred slots go out as far as what the batch knows of the protocol allows. */
static void admit_deferred(batch *b)
{
  int i;
  for (i = 0; i < b->size && b->deferred > 0; i++) {
    if (b->protocol == PROTOCOL_UNKNOWN && b->running >= STREAMS)
      break;
    if (b->slots[i].state == SLOT_DEFERRED) {
      b->deferred--;
      enter(b, &b->slots[i]);
    }
  }
}


/* Learns from a finished transfer whether the batch multiplexes (no answer, no version:
 * still unknown), then lets deferred slots go out. */
static void learn_protocol(batch *b, CURL *easy)
{
  long version = 0;
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
  if (version >= CURL_HTTP_VERSION_2_0) {
    /* twice the connections the streams need: room for a server that allows fewer */
    long most = 2L * ((b->size + STREAMS - 1) / STREAMS);
    b->protocol = PROTOCOL_MULTIPLEX;
    curl_multi_setopt(b->multi, CURLMOPT_MAX_HOST_CONNECTIONS, most);
  } else if (version != 0) {
    b->protocol = PROTOCOL_SERIAL;
  }
  admit_deferred(b);
}


/* Puts the slot's request into the multi handle with the cached token. */
static void start(batch *b, slot *s)
{
  sapwf_client *c = b->client;
  CURLcode rc = CURLE_OK;
  if (s->headers == NULL || s->headers_gen != c->token_gen || s->headers_body != s->has_body) {
    sapwf_free_headers(s->headers);       /* the handle is idle: nothing reads the old list */
    s->headers = sapwf_request_headers(c->token, c->token_len, s->has_body, NULL,
                                        c->extra_headers);
    if (s->headers == NULL) {
      curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
      fail_setup(b, s, "not enough memory for the request headers", CURLE_OUT_OF_MEMORY);
      return;
    }
    s->headers_gen = c->token_gen;
    s->headers_body = s->has_body;
  }
  SAPWF_SETOPT(rc, s->easy, CURLOPT_URL, s->url);
  SAPWF_SETOPT(rc, s->easy, CURLOPT_HTTPHEADER, s->headers);
  if (rc == CURLE_OK)
    rc = sapwf_set_method(s->easy, s->method, s->has_body ? s->body : NULL, s->body_len);
  if (rc != CURLE_OK) {
    fail_setup(b, s, curl_easy_strerror(rc), (long)rc);
    return;
  }
  sapwf_exchange_reset(&s->x, sapwf_refuses_resend(s->method));
  s->sent_gen = c->token_gen;
  if (b->protocol == PROTOCOL_UNKNOWN && b->running >= STREAMS) {
    s->state = SLOT_DEFERRED;
    b->deferred++;
    return;
  }
  enter(b, s);
}


/* Makes sure a token is cached (decode_idx: where cjson.safe's decode is), then starts the
 * slot; or fails it with the token error. For TOKEN_HOLD seconds after a failed fetch, requests that need a
 * token get that error without a new fetch: the retries of many items (send.lua) then
 * ask a failing token endpoint about once a second, not once per item. Returns 0, the
 * slot left idle, when a finalizer closed the client during the fetch. */
static int start_with_token(lua_State *L, batch *b, slot *s, int decode_idx)
{
  sapwf_error e;
  /* A failed fetch leaves no usable token (token.c keeps one that is still valid), so
   * until one succeeds every request would fetch again. A token cached since (a renewal,
   * a 403's refresh, wf:token) ends the hold. */
  if (b->token_failed && sapwf_now() - b->token_failed_at < TOKEN_HOLD
      && (b->client->token == NULL || b->client->token_gen == b->token_failed_gen)) {
    fail(b, s, &b->token_error);
    return 1;
  }
  if (!sapwf_token_ensure(L, b->client, decode_idx, 0, &e)) {
    b->token_failed = 1;
    b->token_failed_at = sapwf_now();
    b->token_failed_gen = b->client->token_gen;
    b->token_error = e;
    fail(b, s, &e);
    return 1;
  }
  b->token_failed = 0;
  /* The close is deferred to the call's end, so the token is still there; but the request
   * has not gone out, and as client:request does, one that had not gone out when its
   * client was closed is not sent: submit raises the closed error. */
  if (b->client->closed)
    return 0;
  start(b, s);
  return 1;
}


/* A transfer of the multi handle ended with result. */
static void finish(batch *b, slot *s, CURLcode result)
{
  curl_multi_remove_handle(b->multi, s->easy);
  b->running--;
  s->state = SLOT_IDLE;
  if (b->protocol == PROTOCOL_UNKNOWN)
    learn_protocol(b, s->easy);
  if (result != CURLE_OK) {
    sapwf_error e;
    sapwf_error_from_exchange(s->easy, result, &s->x, "request", &e);
    fail(b, s, &e);
    return;
  }
  s->status = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
  s->failed = 0;
  push_done(b, s);
}


/* Hands every transfer libcurl reports done to finish. */
static void collect(batch *b)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(b->multi, &left)) != NULL) {
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    char *p = NULL;
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
    finish(b, (slot *)(void *)p, result);
  }
}


/* Fails every request still unanswered past its deadline, as libcurl's own timeout would,
 * and lets deferred slots take the places that freed. Returns the earliest deadline of
 * those still in flight, 0 when none has one. */
static double expire(batch *b)
{
  double now = sapwf_now(), next = 0;
  int i, expired = 0;
  for (i = 0; i < b->size; i++) {
    slot *s = &b->slots[i];
    sapwf_error e;
    if (s->state != SLOT_RUNNING || s->deadline <= 0)
      continue;
    if (s->deadline > now) {
      if (next == 0 || s->deadline < next)
        next = s->deadline;
      continue;
    }
    curl_multi_remove_handle(b->multi, s->easy);
    b->running--;
    snprintf(s->x.errbuf, sizeof s->x.errbuf,
             "Operation timed out after %.0f milliseconds with %lu bytes received",
             (now - s->deadline + b->client->x.timeout) * 1000,
             (unsigned long)s->x.response.body.len);
    sapwf_error_from_exchange(s->easy, CURLE_OPERATION_TIMEDOUT, &s->x, "request", &e);
    fail(b, s, &e);
    expired = 1;
  }
  if (expired)
    admit_deferred(b);
  return next;
}

/* }==================================================================== */


/***
 * Queues a request on a free slot. Its answer comes from wait.
 * @function Batch:submit
 * @tparam integer slot from 1 to the batch's size, not busy
 * @tparam string method GET POST PUT PATCH DELETE
 * @tparam string path starting with "/", appended to api_url as is
 * @tparam[opt] string body sent as application/json
 * @tparam[opt] number deadline monotonic time by which it must be done (default: timeout
 * from when it goes out), as client:request's
 */
typedef struct submit_call {
  batch *b;
  slot *s;
  int unsent;                      /* out: closed during the token fetch, nothing sent */
} submit_call;


static int held_submit(lua_State *L)
{
  submit_call *q = lua_touserdata(L, 1);
  q->unsent = !start_with_token(L, q->b, q->s, 2);
  return 0;
}


static int batch_submit(lua_State *L)
{
  batch *b = check_batch(L);
  lua_Integer k = luaL_checkinteger(L, 2);
  sapwf_request r;
  sapwf_client *c = b->client;
  submit_call q;
  double given = 0;
  int base;
  slot *s;
  luaL_argcheck(L, k >= 1 && k <= b->size, 2, "slot out of range");
  sapwf_check_request(L, 3, &r);
  if (!lua_isnoneornil(L, 6)) {
    given = (double)luaL_checknumber(L, 6);
    luaL_argcheck(L, given >= 0, 6, "deadline must be a monotonic time (0: none of its own)");
  }
  base = lua_gettop(L);
  sapwf_push_held(L, held_submit, &q);
  /* The state after the push (a finalizer may have run): from here to the hold no Lua
   * runs, so a slot found idle is still idle when it is filled. */
  check_idle(L, b, 0);
  s = &b->slots[k - 1];
  luaL_argcheck(L, s->state == SLOT_IDLE, 2, "slot is busy");
  s->given = given;
  if (!reserve(&s->url, &s->url_cap, c->api_url_len + r.path_len + 1)
      || (r.body != NULL && !reserve(&s->body, &s->body_cap, r.body_len + 1)))
    return luaL_error(L, "not enough memory");
  memcpy(s->url, c->api_url, c->api_url_len);
  memcpy(s->url + c->api_url_len, r.path, r.path_len);
  s->url[c->api_url_len + r.path_len] = '\0';
  s->method = r.method;
  s->has_body = r.body != NULL;
  s->body_len = r.body_len;
  if (s->has_body)
    memcpy(s->body, r.body, r.body_len);         /* the Lua string may be gone when sent */
  q.b = b;
  q.s = s;
  q.unsent = 0;
  call_held(L, b, base);
  if (b->closed)                          /* closed by a finalizer: nothing was sent */
    return luaL_error(L, "attempt to use a closed sapwf batch");
  if (q.unsent)
    return luaL_error(L, "attempt to use a closed sapwf client");
  return 0;
}


/* Pushes the result of the oldest finished slot: slot, status, body, headers, gen, deadline
 * or slot, nil, err. Returns the number of values. */
static int pop(lua_State *L, batch *b)
{
  slot *s = &b->slots[b->done[b->done_head]];
  int n = 6;
  luaL_checkstack(L, 7, "too many nested calls");
  lua_pushinteger(L, (lua_Integer)(s - b->slots) + 1);
  if (s->failed) {
    n = 1 + sapwf_push_error(L, &s->error);
  } else {
    sapwf_push_answer(L, s->status, &s->x.response);
    lua_pushinteger(L, (lua_Integer)s->sent_gen);
    lua_pushnumber(L, (lua_Number)s->deadline);
  }
  /* Off the queue once pushed: a push that raised (out of memory) leaves the answer (a
   * start's instance id) for the next wait instead of dropping it. */
  b->done_head = (b->done_head + 1) % b->size;
  b->done_count--;
  s->state = SLOT_IDLE;
  return n;
}


/* batch_wait on a held batch. Returns the number of values pushed; 0 with *mc set when
 * libcurl failed, or when nothing came; 0 with *signalled set when a caught signal ended
 * a wait with a timeout (see batch_wait). */
static int wait(lua_State *L, batch *b, double timeout, CURLMcode *mc, int *signalled)
{
  double deadline = timeout >= 0 ? sapwf_now() + timeout : 0;
  while (b->done_count == 0) {
    int still, wait_ms = POLL_MS;
    double next = 0;
    if (b->running > 0) {
      start_clocks(b);
      *mc = curl_multi_perform(b->multi, &still);
      if (*mc != CURLM_OK)
        return 0;
      collect(b);
      if (b->done_count > 0)
        break;
      next = expire(b);                   /* after reading: an answer that came counts */
      if (b->done_count > 0)
        break;
    }
    if (b->running == 0 && timeout < 0)
      return 0;                           /* nothing in flight, nothing to wait for */
    /* With a timeout the caller also waits for timers of its own (a retry's wait, the
     * limiter's), which a caught signal ends: batch.lua then sends none of those requests.
     * Answers that came are handed over first (above). A signal during curl_multi_poll
     * ends the poll (EINTR, which libcurl takes for no event) and is seen here; one just
     * before it, within POLL_MS. */
    if (timeout >= 0 && sapwf_signal_caught()) {
      *signalled = 1;
      return 0;
    }
    if (next > 0) {
      double left = next - sapwf_now();
      if (left * 1000 < wait_ms)
        wait_ms = left > 0 ? (int)(left * 1000) + 1 : 0;
    }
    /* With nothing in flight, curl_multi_poll just sleeps: the caller's timers are due. */
    if (timeout >= 0) {
      double left = deadline - sapwf_now();
      if (left <= 0)
        return 0;
      if (left * 1000 < wait_ms)
        wait_ms = (int)(left * 1000) + 1;
    }
    *mc = curl_multi_poll(b->multi, NULL, 0, wait_ms, NULL);
    if (*mc != CURLM_OK)
      return 0;
  }
  return pop(L, b);
}


/***
 * The next request that is done, waiting for one at most `timeout` seconds (default: as
 * long as one is in flight). Nothing when none is in flight or the time is up. Once the
 * client is closed it still hands over every request submitted before, then raises the
 * closed error where it would return nothing.
 * @function Batch:wait
 * @tparam[opt] number timeout seconds
 * @treturn[1] integer slot
 * @treturn[1] integer status
 * @treturn[1] string body
 * @treturn[1] string the header lines, as client:request's
 * @treturn[1] integer the generation of the token it carried, for client:renew
 * @treturn[1] number the deadline it had (0: none), for a replay after a 401
 * @treturn[2] integer slot
 * @treturn[2] nil
 * @treturn[2] table err, as client:request's
 * @treturn[3] false when, with a timeout, a signal that catch_sigint(true) catches came
 * (now or before the call) and no request was done: the caller's timers are over
 * (batch.lua sends no more retries); without a timeout it waits for what is in flight
 */
typedef struct wait_call {
  batch *b;
  double timeout;
  CURLMcode mc;
  int signalled;
} wait_call;


static int held_wait(lua_State *L)
{
  wait_call *q = lua_touserdata(L, 1);
  return wait(L, q->b, q->timeout, &q->mc, &q->signalled);
}


static int batch_wait(lua_State *L)
{
  wait_call q;
  int base;
  q.b = check_batch(L);
  q.timeout = -1;
  q.mc = CURLM_OK;
  q.signalled = 0;
  if (!lua_isnoneornil(L, 2)) {
    q.timeout = (double)luaL_checknumber(L, 2);
    luaL_argcheck(L, q.timeout >= 0, 2, "timeout must be a number >= 0");   /* refuses NaN */
  }
  base = lua_gettop(L);
  sapwf_push_held(L, held_wait, &q);
  check_idle(L, q.b, 1);
  base = call_held(L, q.b, base);         /* now the number of results */
  if (q.mc != CURLM_OK)
    return luaL_error(L, "sapwf: libcurl multi: %s", curl_multi_strerror(q.mc));
  if (q.signalled) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return base;
}


/* Frees whatever exists, so also a batch that failed half-way
 * through new. Transfers still in flight are abandoned. The easy handles leave the multi
 * and the share before those go. */
static void release(lua_State *L, batch *b)
{
  int i;
  b->close_pending = 0;
  if (b->slots != NULL) {
    for (i = 0; i < b->size; i++) {
      slot *s = &b->slots[i];
      if (s->easy != NULL) {
        if (s->state == SLOT_RUNNING && b->multi != NULL)
          curl_multi_remove_handle(b->multi, s->easy);
        curl_easy_cleanup(s->easy);
      }
      sapwf_free_headers(s->headers);
      free(s->url);
      free(s->body);
      sapwf_exchange_free(&s->x);
    }
    free(b->slots);
    b->slots = NULL;
  }
  free(b->done);
  b->done = NULL;
  free(b->fresh);
  b->fresh = NULL;
  b->fresh_count = 0;
  if (b->multi != NULL) {
    curl_multi_cleanup(b->multi);
    b->multi = NULL;
  }
  sapwf_share_release(L, b->share);
  b->share = NULL;
  b->running = b->done_count = b->deferred = 0;
  if (b->counted) {                       /* after the last answer it handed over */
    b->counted = 0;
    sapwf_client_batch_released(b->client);
  }
}


/* One idempotent path for close, __gc and __close. As for a client (client.c): a finalizer
 * that closes the batch while its submit or wait runs only marks it closed; the call frees
 * it when it ends (call_held). */
static int batch_close(lua_State *L)
{
  batch *b = luaL_checkudata(L, 1, SAPWF_BATCH_MT);
  b->closed = 1;
  if (b->busy > 0)
    b->close_pending = 1;
  else
    release(L, b);
  return 0;
}


static int batch_tostring(lua_State *L)
{
  batch *b = luaL_checkudata(L, 1, SAPWF_BATCH_MT);
  if (b->closed)
    lua_pushliteral(L, SAPWF_BATCH_MT " (closed)");
  else
    lua_pushfstring(L, SAPWF_BATCH_MT " (%d slots)", b->size);
  return 1;
}


/* Keeps the client (at client_idx) alive as long as the batch on top of the stack. */
static void anchor_client(lua_State *L, int client_idx)
{
#if LUA_VERSION_NUM >= 504
  lua_pushvalue(L, client_idx);
  lua_setiuservalue(L, -2, 1);
#else
  lua_createtable(L, 1, 0);               /* Lua 5.1's environments must be tables */
  lua_pushvalue(L, client_idx);
  lua_rawseti(L, -2, 1);
#if LUA_VERSION_NUM >= 502
  lua_setuservalue(L, -2);
#else
  lua_setfenv(L, -2);
#endif
#endif
}


/* A slot's easy handle: the client's API handle duplicated, collecting into the slot. */
static CURLcode open_slot(batch *b, slot *s)
{
  CURLcode rc = CURLE_OK;
  s->x.response.max = b->client->x.response.max;
  s->easy = curl_easy_duphandle(b->client->api_easy);
  if (s->easy == NULL)
    return CURLE_OUT_OF_MEMORY;
  rc = sapwf_exchange_callbacks(s->easy, &s->x);
  SAPWF_SETOPT(rc, s->easy, CURLOPT_PRIVATE, (void *)s);
  SAPWF_SETOPT(rc, s->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
  SAPWF_SETOPT(rc, s->easy, CURLOPT_TIMEOUT_MS, 0L);      /* the batch's: see expire */
  /* While the protocol is unknown (TLS), wait for the first connection to tell (ALPN)
   * whether it multiplexes: with HTTP/2 the whole batch shares it. Over plain HTTP/1.1
   * waiting would only hold the other requests back. */
  if (b->protocol == PROTOCOL_UNKNOWN)
    SAPWF_SETOPT(rc, s->easy, CURLOPT_PIPEWAIT, 1L);
  if (b->share != NULL)
    SAPWF_SETOPT(rc, s->easy, CURLOPT_SHARE, sapwf_share_handle(b->share));
  return rc;
}


/***
 * A batch of `size` slots on this client.
 * @function Client:batch
 * @tparam integer size from 1 to 1024: requests in flight at most
 * @treturn Batch
 */
static int batch_new(lua_State *L)
{
  sapwf_client *c = sapwf_check_open(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  CURLcode rc = CURLE_OK;
  batch *b;
  int i;
  luaL_argcheck(L, size >= 1 && size <= MAX_SLOTS, 2, "size must be from 1 to 1024");
  b = lua_newuserdatauv(L, sizeof *b, 1);           /* client, size, batch */
  memset(b, 0, sizeof *b);
  b->closed = 1;
  luaL_getmetatable(L, SAPWF_BATCH_MT);
  lua_setmetatable(L, -2);
  anchor_client(L, 1);
  /* Making the batch (and on 5.1 its anchor table) may run the collector, and a finalizer
   * may have closed the client, or be calling it within one of its calls: the half-made
   * batch is closed, its __gc frees it. */
  if (c->closed)
    return luaL_error(L, "attempt to use a closed sapwf client");
  sapwf_client_refuse_busy(L, c);
  b->client = c;
  c->batches++;                           /* a close keeps what redact needs till release */
  b->counted = 1;
  b->size = (int)size;
  b->share = sapwf_share_retain(c->share);
  b->slots = calloc((size_t)size, sizeof *b->slots);
  b->done = calloc((size_t)size, sizeof *b->done);
  b->fresh = calloc((size_t)size, sizeof *b->fresh);
  b->multi = curl_multi_init();
  if (b->slots == NULL || b->done == NULL || b->fresh == NULL || b->multi == NULL)
    return luaL_error(L, "not enough memory");
  curl_multi_setopt(b->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(b->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)STREAMS);
  /* plain http:// is HTTP/1.1 here (libcurl speaks HTTP/2 only over TLS) */
  if (!curl_strnequal(c->api_url, "https://", 8))
    b->protocol = PROTOCOL_SERIAL;
  /* How many idle connections the shared cache keeps: libcurl's rule is four per transfer
   * still in the multi, which dwindles as the batch ends and would close the batch's own
   * connections; here it is four per slot throughout. The client's own calls keep as many
   * (the easy interface's default is 5), so batches and calls take turns on the same
   * connections instead of closing each other's. */
  curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, 4L * (long)size);
  if (4L * (long)size > c->keep_connections) {
    c->keep_connections = 4L * (long)size;
    curl_easy_setopt(c->api_easy, CURLOPT_MAXCONNECTS, c->keep_connections);
  }
  for (i = 0; i < b->size && rc == CURLE_OK; i++)
    rc = open_slot(b, &b->slots[i]);
  if (rc != CURLE_OK)
    return luaL_error(L, "sapwf: cannot set up libcurl: %s", curl_easy_strerror(rc));
  b->closed = 0;
  return 1;
}


/***
 * client:redact's text, also without the tokens the batch's requests carried. The client
 * keeps its token and the one before; a slow request may have carried one older still (two
 * renewals while it was under way: a 403's refresh, an expiry), and the server's answer to
 * it may quote it. The slots' header lists hold what each carried until it is sent again,
 * and the Lua layer judges an answer before its slot takes the next request. Works on a
 * closed batch too (no slots: the client's alone).
 * @function Batch:redact
 * @tparam string text
 * @treturn string
 */
typedef struct redact_call {
  batch *b;
  const char *text;                       /* the argument, on the stack */
  size_t len;
} redact_call;


/* The token in a slot's header list: its first line is SAPWF_BEARER_LINE and the token
 * (sapwf_request_headers). */
static sapwf_text carried_token(const slot *s)
{
  static const char prefix[] = SAPWF_BEARER_LINE;
  sapwf_text t = { NULL, 0 };
  if (s->headers != NULL && strncmp(s->headers->data, prefix, sizeof prefix - 1) == 0) {
    t.data = s->headers->data + sizeof prefix - 1;
    t.len = strlen(t.data);
  }
  return t;
}


/* Held: the userdata allocates, and a finalizer may run; the closes it makes wait. */
static int held_redact(lua_State *L)
{
  redact_call *q = lua_touserdata(L, 1);
  batch *b = q->b;
  int slots = b->slots != NULL ? b->size : 0;
  sapwf_text *secrets = lua_newuserdata(L, ((size_t)sapwf_client_secret_count(b->client)
                                            + (size_t)slots) * sizeof *secrets);
  int n = sapwf_client_secrets(b->client, secrets), first = n, i, j;
  for (i = 0; i < slots; i++) {
    sapwf_text t = carried_token(&b->slots[i]);
    /* most slots carry the same token: each distinct one once */
    for (j = first; j < n && t.data != NULL; j++)
      if (secrets[j].len == t.len && memcmp(secrets[j].data, t.data, t.len) == 0)
        t.data = NULL;
    if (t.data != NULL)
      secrets[n++] = t;
  }
  sapwf_push_redacted(L, q->text, q->len, secrets, n);     /* functions.c */
  return 1;
}


static int batch_redact(lua_State *L)
{
  redact_call q;
  int base;
  q.b = luaL_checkudata(L, 1, SAPWF_BATCH_MT);
  q.text = luaL_checklstring(L, 2, &q.len);
  lua_settop(L, 2);
  base = lua_gettop(L);
  sapwf_push_held(L, held_redact, &q);
  refuse_busy(L, q.b);                    /* a closed batch is fine: no slots, the client's */
  sapwf_client_refuse_busy(L, q.b->client);
  return call_held(L, q.b, base);
}


static const luaL_Reg batch_methods[] = {
  {"submit", batch_submit},
  {"wait", batch_wait},
  {"redact", batch_redact},
  {"close", batch_close},
  {NULL, NULL}
};

static const luaL_Reg batch_metamethods[] = {
  {"__gc", batch_close},
  {"__close", batch_close},
  {"__tostring", batch_tostring},
  {NULL, NULL}
};


/* Creates the Batch metatable and adds `batch` to the Client's methods (client.c knows
 * nothing of batches). Expects cjson.safe's decode on top of the stack and pops it: the
 * methods get it as their upvalue 1, for the token fetches they make. */
void sapwf_batch_open(lua_State *L)
{
  luaL_getmetatable(L, SAPWF_CLIENT_MT);              /* decode, client mt */
  lua_getfield(L, -1, "__index");                     /* decode, client mt, methods */
  lua_pushcfunction(L, batch_new);
  lua_setfield(L, -2, "batch");
  lua_pop(L, 2);                                      /* decode */
  luaL_newmetatable(L, SAPWF_BATCH_MT);               /* decode, mt */
  lua_pushliteral(L, SAPWF_BATCH_MT);
  lua_setfield(L, -2, "__name");
  luaL_setfuncs(L, batch_metamethods, 0);
  luaL_newlibtable(L, batch_methods);                 /* decode, mt, methods */
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, batch_methods, 1);
  lua_setfield(L, -2, "__index");                     /* decode, mt */
  lua_pop(L, 2);
}
