/* The floor for any libcurl client with many starts in flight: BENCH_IN_FLIGHT easy
 * handles on one multi handle, each re-added as soon as its answer is in, until the time is
 * up. Usage: multi URL SECONDS [IN_FLIGHT] (default 32; $SAPWF_BENCH_STARTS: that many starts
 * instead of a time; the token in $SAPWF_BENCH_TOKEN,
 * sapwf's User-Agent in $SAPWF_BENCH_USER_AGENT). Prints one line: starts N seconds S
 * failures N ended T peak_rss_kb N (common.h). MIT licence, see LICENSE. */
#include "common.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
  bench_run run;
  CURLM *multi;
  CURL **easy;
  double seconds, start;
  int in_flight = argc > 3 ? atoi(argv[3]) : 32, running = 0, i;
  long issued;
  if (!bench_init(&run, argc, argv, &seconds) || in_flight < 1)
    return 2;
  multi = curl_multi_init();
  easy = calloc((size_t)in_flight, sizeof *easy);
  if (multi == NULL || easy == NULL)
    return 1;
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)in_flight);
  for (i = 0; i < in_flight; i++) {
    easy[i] = curl_easy_init();
    if (easy[i] == NULL || bench_setup(&run, easy[i]) != CURLE_OK
        || curl_multi_add_handle(multi, easy[i]) != CURLM_OK) {
      fprintf(stderr, "multi: cannot set up libcurl\n");
      return 1;
    }
  }
  issued = in_flight;
  start = bench_now();
  do {
    CURLMsg *msg;
    int left;
    curl_multi_perform(multi, &running);
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      bench_count(&run, msg->easy_handle, msg->data.result);
      curl_multi_remove_handle(multi, msg->easy_handle);
      if (bench_more(&run, start, seconds, issued)) {
        issued++;
        curl_multi_add_handle(multi, msg->easy_handle);
        running++;
      }
    }
    if (running > 0)
      curl_multi_poll(multi, NULL, 0, 1000, NULL);
  } while (running > 0);
  bench_report(&run, bench_now() - start);
  for (i = 0; i < in_flight; i++)
    curl_easy_cleanup(easy[i]);
  free(easy);
  curl_multi_cleanup(multi);
  bench_free(&run);
  return 0;
}
