/* The benchmark's one clock: CLOCK_MONOTONIC, the same in every process, so the slots
 * bench/turns.c logs and the ends the rows print can be compared. MIT licence, see LICENSE. */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <time.h>

static inline double bench_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
