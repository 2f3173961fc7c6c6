/* One HTTP exchange on a libcurl easy handle: the callbacks and what they collect, the
 * guard against a second POST, the request headers, the time a request may take, and the
 * facts of a failure. Plain C on libcurl, without Lua: it can be built, tested and fuzzed
 * alone. MIT licence, see LICENSE. */
#ifndef SAPWF_EXCHANGE_H
#define SAPWF_EXCHANGE_H

#include "buffer.h"

#include <stddef.h>
#include <stdio.h>
#include <curl/curl.h>

/* CURLOPT_PROTOCOLS_STR (7.85) and CURLOPT_PREREQFUNCTION (7.80) are needed. */
#if LIBCURL_VERSION_NUM < 0x075500
#error "sapwf.core needs libcurl 7.85.0 or newer"
#endif

/* The most seconds a timeout may be: as a long count of milliseconds it must fit 32 bits
 * wherever long does. Options are refused beyond it; a deadline further off is cut to it. */
#define SAPWF_MAX_SECONDS 2147483.0

/* Chains curl_easy_setopt calls: once one fails, the rest are skipped and rc keeps the
 * first failure, so a setup function checks every option with one test at its end. */
#define SAPWF_SETOPT(rc, easy, opt, val) \
  ((rc) = (rc) != CURLE_OK ? (rc) : curl_easy_setopt((easy), (opt), (val)))

/* Request methods, in the order client:request names them (sapwf_method_names). */
enum sapwf_method { SAPWF_METHOD_GET, SAPWF_METHOD_POST, SAPWF_METHOD_PUT, SAPWF_METHOD_PATCH,
                    SAPWF_METHOD_DELETE };
extern const char *const sapwf_method_names[];

/* What one exchange collects. The libcurl callbacks see only this struct. */
typedef struct sapwf_response {
  sapwf_buffer body;
  sapwf_buffer headers;   /* raw header lines of the last response, names lower-cased */
  size_t max;             /* max_response: cap of body and of headers */
  int too_large;          /* the write or header callback refused more data */
  int no_memory;          /* realloc failed in a callback */
  /* A 2xx body goes to this file instead of `body` when sink_path is set: opened (and
   * emptied) at each 2xx status line, written as it comes, in constant memory and without
   * the max cap. Any other answer's body is collected in `body` as usual. */
  const char *sink_path;
  FILE *sink;
  int sink_errno;         /* the errno of a failed open, write or close; 0: none */
  int sink_used;          /* the last answer's body went to the file */
  int reading;            /* a GET or a token fetch: ending it on a caught signal changes
                           * nothing (set before each perform, which clears it) */
  int interrupted;        /* a transfer ended by sapwf_exchange_interrupt */
} sapwf_response;

/* The guard against libcurl re-sending a POST by itself (see exchange.c). */
typedef struct sapwf_upload {
  int refuse_resend;      /* POST: never send the request a second time */
  int resend_refused;     /* set when libcurl asked to rewind or to send again */
  int prereq_calls;       /* requests libcurl was about to send during this perform */
} sapwf_upload;

/* Everything the callbacks of one easy handle write to, and the time its request may take.
 * Its address must not change while a handle points at it (it lives in a userdata). */
typedef struct sapwf_exchange {
  sapwf_response response;
  sapwf_upload upload;
  char errbuf[CURL_ERROR_SIZE];
  double timeout;         /* seconds one request may take, its exchanges together */
  double deadline;        /* while a request runs: when its time is up (0: none) */
} sapwf_exchange;

/* An operational failure, self-contained (no pointers into anything) so it can be filled
 * anywhere and pushed to Lua by the one funnel, sapwf_push_error (lua_request.c). */
typedef struct sapwf_error {
  const char *kind;                /* network timeout tls auth server decode */
  const char *phase;               /* token request */
  char message[CURL_ERROR_SIZE + 160];
  char code[128];                  /* token endpoint "error", empty if none */
  long curl_code;                  /* -1 when libcurl did not fail */
  long status;                     /* 0 when no HTTP answer */
  double retry_after;              /* seconds the token endpoint's Retry-After asks; -1: none */
  int sent;
} sapwf_error;

/* On (1) from a signal handler: a transfer whose answer goes to a file (sink_path), or a
 * GET or a token fetch (reading), ends within about a second (a progress callback), as
 * CURLE_ABORTED_BY_CALLBACK with response.interrupted set; other transfers run to their end.
 * Async-signal-safe (a store to a sig_atomic_t). The command line sets it at Ctrl-C,
 * SIGTERM or SIGHUP (signal.c), so an export or a listing stops at once, while a start on
 * its way still gets its answer. */
void sapwf_exchange_interrupt(int on);

CURLcode sapwf_exchange_setup(CURL *easy, sapwf_exchange *x);
CURLcode sapwf_exchange_callbacks(CURL *easy, sapwf_exchange *x);
void sapwf_exchange_reset(sapwf_exchange *x, int refuse_resend);
CURLcode sapwf_exchange_perform(sapwf_exchange *x, CURL *easy, int refuse_resend, long *status);
void sapwf_exchange_free(sapwf_exchange *x);
/* The first line of every list sapwf_request_headers makes, the token after it (batch.c
 * reads back the token a slot's request carried). */
#define SAPWF_BEARER_LINE "Authorization: Bearer "
struct curl_slist *sapwf_request_headers(const char *token, size_t token_len, int has_body,
                                         const char *accept, const struct curl_slist *extra);
int sapwf_exchange_close_sink(sapwf_response *r);
void sapwf_free_headers(struct curl_slist *list);
CURLcode sapwf_set_method(CURL *easy, int method, const char *body, size_t body_len);
int sapwf_refuses_resend(int method);
void sapwf_error_init(sapwf_error *e, const char *kind, const char *phase);
void sapwf_error_from_exchange(CURL *easy, CURLcode rc, const sapwf_exchange *x,
                               const char *phase, sapwf_error *e);

#endif /* SAPWF_EXCHANGE_H */
