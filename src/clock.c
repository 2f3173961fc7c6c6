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


void sapwf_sleep(double seconds)
{
  struct timespec left;
  left.tv_sec = (time_t)seconds;
  left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
  if (left.tv_nsec > 999999999L)
    left.tv_nsec = 999999999L;
  while (nanosleep(&left, &left) != 0 && errno == EINTR)
    ;
}
