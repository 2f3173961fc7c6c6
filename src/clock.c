/* Time: the core's clock, and for the Lua layer's retries a monotonic clock and a sleep. Plain Lua has neither
 * (os.time counts whole seconds and moves with the wall clock; os.clock is CPU time).
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <errno.h>
#include <time.h>

/* A day: far more than any backoff; a longer sleep is a bug in the caller. */
#define MAX_SLEEP 86400.0


/* The one clock of the core: monotonic seconds, so that token expiries and deadlines do
 * not move when the wall clock is set. */
double sapwf_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/***
 * Seconds on a monotonic clock (CLOCK_MONOTONIC): for deadlines, never for dates.
 * @function monotonic
 * @treturn number
 */
int sapwf_core_monotonic(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)sapwf_now());
  return 1;
}


/***
 * Blocks the calling thread for `seconds` (0 to 86400; fractions allowed). A signal that
 * interrupts the sleep does not shorten it.
 * @function sleep
 * @tparam number seconds
 */
int sapwf_core_sleep(lua_State *L)
{
  double seconds;
  struct timespec left;
  luaL_checktype(L, 1, LUA_TNUMBER);                  /* not "1": a string is a mistake here */
  seconds = (double)lua_tonumber(L, 1);
  luaL_argcheck(L, seconds >= 0 && seconds <= MAX_SLEEP, 1,
                "seconds from 0 to 86400 expected");  /* also refuses NaN */
  left.tv_sec = (time_t)seconds;
  left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
  if (left.tv_nsec > 999999999L)
    left.tv_nsec = 999999999L;
  while (nanosleep(&left, &left) != 0 && errno == EINTR)
    ;
  return 0;
}
