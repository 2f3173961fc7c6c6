/* The one clock of sapwf.core, and a sleep on it. MIT licence, see LICENSE. */
#include "clock.h"

#include <errno.h>
#include <time.h>


double sapwf_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


struct timespec sapwf_timespec(double seconds)
{
  struct timespec t;
  t.tv_sec = (time_t)seconds;
  t.tv_nsec = (long)((seconds - (double)t.tv_sec) * 1e9);
  if (t.tv_nsec > 999999999L)
    t.tv_nsec = 999999999L;
  return t;
}


void sapwf_sleep(double seconds)
{
  struct timespec left = sapwf_timespec(seconds);
  while (nanosleep(&left, &left) != 0 && errno == EINTR)
    ;
}
