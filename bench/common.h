/* What the two C floor programs share: arguments, the handle set-up, counting, the report.
 * Header-only so each program is one compile. MIT licence, see LICENSE. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

#define BENCH_BODY "{\"definitionId\":\"simple\",\"context\":{\"order\":1}}"

typedef struct bench_run {
  const char *url, *user_agent;
  struct curl_slist *headers;
  long starts, failures;
  long count;               /* > 0: exactly this many starts, whatever the time */
} bench_run;

/* Answers are read and dropped: the floor measures the exchange, not what is kept. */
static size_t bench_discard(char *p, size_t size, size_t nmemb, void *ud)
{
  (void)p;
  (void)ud;
  return size * nmemb;
}

/* The request is sapwf's, byte for byte but for the token's value: the same headers in the
 * same order (src/exchange.c), its User-Agent ($SAPWF_BENCH_USER_AGENT, from bench/run.lua)
 * included and set as sapwf sets it. libcurl 7.88 spends about 100 instructions on each
 * header byte it sends, so a header one row sends and another does not would tilt the
 * comparison. */
static int bench_init(bench_run *run, int argc, char **argv, double *seconds)
{
  static char auth[16384];
  const char *token = getenv("SAPWF_BENCH_TOKEN");
  const char *user_agent = getenv("SAPWF_BENCH_USER_AGENT");
  memset(run, 0, sizeof *run);
  if (argc < 3 || token == NULL || strlen(token) > sizeof auth - 32 || user_agent == NULL) {
    fprintf(stderr, "usage: SAPWF_BENCH_TOKEN=... SAPWF_BENCH_USER_AGENT=... %s URL SECONDS\n",
            argv[0]);
    return 0;
  }
  run->url = argv[1];
  *seconds = atof(argv[2]);
  /* $SAPWF_BENCH_STARTS: a fixed number of starts instead of a time, for the instruction
   * counts (bench/callgrind.lua), which compare runs of N and 2N starts. */
  if (getenv("SAPWF_BENCH_STARTS") != NULL)
    run->count = atol(getenv("SAPWF_BENCH_STARTS"));
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 0;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  run->user_agent = user_agent;
  run->headers = curl_slist_append(NULL, auth);
  run->headers = curl_slist_append(run->headers, "Accept: application/json");
  run->headers = curl_slist_append(run->headers, "Content-Type: application/json");
  run->headers = curl_slist_append(run->headers, "Expect:");
  return run->headers != NULL;
}

static CURLcode bench_setup(bench_run *run, CURL *easy)
{
  CURLcode rc = curl_easy_setopt(easy, CURLOPT_URL, run->url);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(easy, CURLOPT_USERAGENT, run->user_agent);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, run->headers);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDS, BENCH_BODY);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, bench_discard);
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  return rc;
}

/* Whether another start is due: before the time is up, or, counting, until `issued` starts
 * have been sent. */
static int bench_more(const bench_run *run, double start, double seconds, long issued)
{
  if (run->count > 0)
    return issued < run->count;
  return bench_now() - start < seconds;
}

/* A start counts when the answer is 201 Created. */
static void bench_count(bench_run *run, CURL *easy, CURLcode rc)
{
  long status = 0;
  if (rc == CURLE_OK)
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status == 201)
    run->starts++;
  else
    run->failures++;
}

/* VmHWM: the peak resident set of this process, in kB. */
static long bench_peak_rss_kb(void)
{
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

/* "ended": when the measurement ended (CLOCK_MONOTONIC), so that bench/turns.c's log
 * tells how much of the measured span this process really ran. */
static void bench_report(const bench_run *run, double elapsed)
{
  printf("starts %ld seconds %.3f failures %ld ended %.6f peak_rss_kb %ld\n", run->starts,
         elapsed, run->failures, bench_now(), bench_peak_rss_kb());
}

static void bench_free(bench_run *run)
{
  curl_slist_free_all(run->headers);
  curl_global_cleanup();
}

#endif
