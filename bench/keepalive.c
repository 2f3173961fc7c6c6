/* The floor for any libcurl client, one start at a time: one easy handle, one kept-alive
 * connection, the start body and the Bearer header set once, each answer read into a
 * buffer and dropped. Usage: keepalive URL SECONDS (or $SAPWF_BENCH_STARTS starts; the token in $SAPWF_BENCH_TOKEN, so it
 * is never on a command line; sapwf's User-Agent in $SAPWF_BENCH_USER_AGENT). Prints one
 * line: starts N seconds S failures N ended T peak_rss_kb N. MIT licence, see LICENSE. */
#include "common.h"

int main(int argc, char **argv)
{
  bench_run run;
  CURL *easy;
  double seconds, start;
  if (!bench_init(&run, argc, argv, &seconds))
    return 2;
  easy = curl_easy_init();
  if (easy == NULL || bench_setup(&run, easy) != CURLE_OK) {
    fprintf(stderr, "keepalive: cannot set up libcurl\n");
    return 1;
  }
  start = bench_now();
  while (bench_more(&run, start, seconds, run.starts + run.failures))
    bench_count(&run, easy, curl_easy_perform(easy));
  bench_report(&run, bench_now() - start);
  curl_easy_cleanup(easy);
  bench_free(&run);
  return 0;
}
