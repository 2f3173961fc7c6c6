/* The one clock of sapwf.core. Plain C. MIT licence, see LICENSE. */
#ifndef SAPWF_CLOCK_H
#define SAPWF_CLOCK_H

#include <time.h>

/* Monotonic seconds, so that token expiries and deadlines do not move when the wall clock
 * is set. The Lua layer reads the same clock (core.monotonic). */
double sapwf_now(void);

/* `seconds` (>= 0) as the struct timespec that nanosleep and pselect take. */
struct timespec sapwf_timespec(double seconds);

/* Sleeps `seconds` (>= 0); a signal that interrupts the sleep does not shorten it. (The
 * sleep that the command line's caught signals end is signal.c's: this layer knows no
 * signals.) */
void sapwf_sleep(double seconds);

#endif /* SAPWF_CLOCK_H */
