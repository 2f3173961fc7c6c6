/* core.catch_sigint / core.sigint_caught: Ctrl-C, SIGTERM and SIGHUP as a flag the command
 * line's bulk start reads between lines. The interpreters' own SIGINT handling raises
 * "interrupted!" from a hook at the next call or return: Lua 5.4 and 5.1 set it on the main
 * thread only, but LuaJIT's hook is global, so it could fire inside a batch whose starts were
 * sent, losing the ids of instances that exist. SIGTERM (kill, a service manager, a CI job
 * cancelled) and SIGHUP (the terminal closed) end the process by default, losing the starts
 * in flight the same way; they get the same flag. With this handler installed neither the
 * interpreter's handler nor the default action runs; a second signal ends the process at
 * once, as the command line promises. A signal within SAME_SIGNAL seconds of the first is
 * that one delivered twice, not a second: coreutils' timeout sends its signal to the
 * command and then to its whole process group, and a service manager may follow SIGTERM
 * with SIGHUP at once; a person pressing Ctrl-C again is slower than that.
 * The first signal also ends a transfer whose answer goes to a file, a GET and a token fetch
 * (sapwf_exchange_interrupt, exchange.c): an export, which may take long and whose part file
 * the library then removes, or a listing, stops at once instead of after its last byte; a
 * start on its way, or any request that may change something, is no such transfer.
 * A SIGTERM or SIGHUP ignored when the flag is set up stays ignored (nohup ignores SIGHUP so
 * that a run outlives its terminal). SIGINT is caught even then: a non-interactive shell
 * ignores it in the commands it puts in the background, where `kill -INT` should still stop
 * a run cleanly.
 * While they are caught, the first signal also ends the waits before a request is sent
 * again (sapwf_sleep_unless_caught: core.sleep, the retries' wait; sapwf_signal_caught: a
 * batch's wait for its timers, batch.c): a user who presses Ctrl-C during a 30 s
 * Retry-After means "stop", and the request that would have gone out at its end is not
 * sent (send.lua, batch.lua) instead of being sent and the signal reported afterwards.
 * A layer of its own, below functions.c and batch.c, which call it; it calls only
 * exchange.c and clock.c.
 * For the command line only: a signal handler belongs to the process, not to a library.
 * Nothing here changes a thing while no signal is caught: a library's sleeps and waits are
 * as long as asked.
 * MIT licence, see LICENSE. */
#if defined(__linux__)
#define _GNU_SOURCE                             /* dladdr, RTLD_NODELETE (glibc) */
#endif
#include "sapwf.h"

#if defined(__linux__)
#include <dlfcn.h>
#endif
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

/* How close to the first signal another one is the same event (see the top). */
#define SAME_SIGNAL 0.2

static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP };
static const char *const signal_names[] = { "SIGINT", "SIGTERM", "SIGHUP" };
#define N_SIGNALS (sizeof caught_signals / sizeof caught_signals[0])

static volatile sig_atomic_t caught;      /* the first signal that came, or 0 */
static volatile sig_atomic_t catching;    /* catch_sigint(true) is on */
static struct timespec caught_at;         /* when it came (CLOCK_MONOTONIC) */
static struct sigaction previous[N_SIGNALS];
static int installed[N_SIGNALS];

/* Seconds since the first signal; clock_gettime is async-signal-safe (POSIX), unlike
 * anything that could take a lock. */
static double since_caught(void)
{
  struct timespec now;
  if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
    return SAME_SIGNAL;                   /* no clock: count it as a second signal */
  return (double)(now.tv_sec - caught_at.tv_sec) + (now.tv_nsec - caught_at.tv_nsec) / 1e9;
}

static void on_signal(int sig)
{
  if (caught) {
    if (since_caught() < SAME_SIGNAL)     /* the first one delivered again */
      return;
    signal(sig, SIG_DFL);                 /* the second signal: the default action, now */
    raise(sig);
    return;
  }
  if (clock_gettime(CLOCK_MONOTONIC, &caught_at) != 0)
    memset(&caught_at, 0, sizeof caught_at);
  caught = sig;
  sapwf_exchange_interrupt(1);            /* an export ends now; a start gets its answer */
}


/* Keeps this module in memory until the process ends: called before a handler of it is
 * installed. The interpreter unloads its C modules when its state closes (lua_close, as
 * os.exit(code, true) does), and the command line keeps its handlers once a signal came, so
 * a copy of that signal arriving after it would run code no longer mapped (exit 139, not
 * 130). A second dlopen with RTLD_NODELETE keeps the module whatever the interpreter's
 * dlclose does; found by dladdr of an object in it. */
static void stay_loaded(void)
{
#if defined(__linux__) && defined(RTLD_NODELETE) && defined(RTLD_NOLOAD)
  static int pinned;
  Dl_info info;
  if (pinned)
    return;
  if (dladdr((const void *)&caught_at, &info) != 0 && info.dli_fname != NULL
      && dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) != NULL)
    pinned = 1;
#endif                                  /* elsewhere (no dladdr without feature macros that
                                         * -D_POSIX_C_SOURCE hides): as before, unpinned */
}


/***
 * Catches Ctrl-C, SIGTERM and SIGHUP (true) as a flag, or gives each its handler from before
 * (false). A SIGTERM or SIGHUP that is ignored stays ignored. While caught, the first signal
 * also ends a GET, a token fetch, or a request whose answer goes to a file (its error: kind
 * "interrupted");
 * a batch's requests run to their end.
 * @function catch_sigint
 * @tparam boolean on
 */
int sapwf_core_catch_sigint(lua_State *L)
{
  size_t i, j;
  int on;
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  on = lua_toboolean(L, 1);
  if (on) {
    caught = 0;
    stay_loaded();
  }
  catching = on;                          /* off: a signal caught before ends no wait */
  sapwf_exchange_interrupt(0);            /* also off: no later transfer is ended */
  for (i = 0; i < N_SIGNALS; i++) {
    int sig = caught_signals[i];
    if (on && !installed[i]) {
      struct sigaction action, now;
      if (sig != SIGINT && sigaction(sig, NULL, &now) == 0 && now.sa_handler == SIG_IGN)
        continue;
      memset(&action, 0, sizeof action);
      action.sa_handler = on_signal;
      /* one handler at a time: none interrupts another between caught_at and caught */
      sigemptyset(&action.sa_mask);
      for (j = 0; j < N_SIGNALS; j++)
        sigaddset(&action.sa_mask, caught_signals[j]);
      if (sigaction(sig, &action, &previous[i]) == 0)
        installed[i] = 1;
    } else if (!on && installed[i]) {
      sigaction(sig, &previous[i], NULL);
      installed[i] = 0;
    }
  }
  return 0;
}


/***
 * Whether Ctrl-C, SIGTERM or SIGHUP came since catch_sigint(true), and which came first.
 * @function sigint_caught
 * @treturn boolean
 * @treturn[opt] string "SIGINT", "SIGTERM" or "SIGHUP" when one came
 */
int sapwf_core_sigint_caught(lua_State *L)
{
  size_t i;
  int sig = caught;
  lua_pushboolean(L, sig != 0);
  for (i = 0; i < N_SIGNALS; i++) {
    if (caught_signals[i] == sig) {
      lua_pushstring(L, signal_names[i]);
      return 2;
    }
  }
  return 1;
}


/* Whether a signal came while they are caught, and they still are: then the waits before
 * a request goes out again end (see the top). Async-signal-safe reads only. */
int sapwf_signal_caught(void)
{
  return catching && caught;
}


/* Waits until `until` (sapwf_now's clock) unless a signal is caught first. mask: the signal
 * mask during the wait, which pselect sets and restores atomically: a signal that came
 * between the check of the flag and the wait (blocked until then) is delivered at its
 * start and ends it at once. NULL: nanosleep, where such a signal would be seen only at
 * the end of the wait (only when the signals could not be blocked, which cannot happen). */
static void wait_until(double until, const sigset_t *mask)
{
  while (!caught) {
    struct timespec left;
    double t = until - sapwf_now();
    if (t <= 0)
      return;
    left = sapwf_timespec(t);
    if (mask != NULL)
      pselect(0, NULL, NULL, NULL, &left, mask);   /* EINTR: the loop checks the flag */
    else
      nanosleep(&left, NULL);
  }
}


/* Sleeps `seconds` (>= 0), as sapwf_sleep does, but while the signals are caught a caught
 * signal ends the sleep, and one that came before it keeps it from beginning: a retry that
 * waits would otherwise go out after the user said stop. Returns 1 when a caught signal
 * ended (or prevented) it, 0 after the whole time. */
int sapwf_sleep_unless_caught(double seconds)
{
  sigset_t handled, before;
  size_t i;
  int ended;
  if (!catching) {
    sapwf_sleep(seconds);                 /* a library's sleep: as long as asked */
    return 0;
  }
  /* The caught signals are blocked from the check of the flag to the wait, so that none
   * falls between them (it would be handled there, and the wait begin after it). In this
   * thread only: sigprocmask is unspecified in a process with threads (libcurl's
   * resolver may run one). */
  sigemptyset(&handled);
  for (i = 0; i < N_SIGNALS; i++) {
    if (installed[i])
      sigaddset(&handled, caught_signals[i]);
  }
  if (pthread_sigmask(SIG_BLOCK, &handled, &before) != 0) {
    wait_until(sapwf_now() + seconds, NULL);
    return caught != 0;
  }
  wait_until(sapwf_now() + seconds, &before);
  ended = caught != 0;
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  return ended;
}
