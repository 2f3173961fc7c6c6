/* core.catch_sigint / core.sigint_caught: Ctrl-C, SIGTERM and SIGHUP as a flag the command
 * line's bulk start reads between lines. The interpreters' own SIGINT handling raises
 * "interrupted!" from a hook at the next call or return: Lua 5.4 and 5.1 set it on the main
 * thread only, but LuaJIT's hook is global, so it could fire inside a batch whose starts were
 * sent, losing the ids of instances that exist. SIGTERM (kill, a service manager, a CI job
 * cancelled) and SIGHUP (the terminal closed) end the process by default, losing the starts
 * in flight the same way; they get the same flag. With this handler installed neither the
 * interpreter's handler nor the default action runs; a second signal ends the process at
 * once, as the command line promises.
 * A SIGTERM or SIGHUP ignored when the flag is set up stays ignored (nohup ignores SIGHUP so
 * that a run outlives its terminal). SIGINT is caught even then: a non-interactive shell
 * ignores it in the commands it puts in the background, where `kill -INT` should still stop
 * a run cleanly.
 * For the command line only: a signal handler belongs to the process, not to a library.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <signal.h>
#include <string.h>

static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP };
static const char *const signal_names[] = { "SIGINT", "SIGTERM", "SIGHUP" };
#define N_SIGNALS (sizeof caught_signals / sizeof caught_signals[0])

static volatile sig_atomic_t caught;      /* the first signal that came, or 0 */
static struct sigaction previous[N_SIGNALS];
static int installed[N_SIGNALS];

static void on_signal(int sig)
{
  if (caught) {                           /* the second signal: the default action, now */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  caught = sig;
}


/***
 * Catches Ctrl-C, SIGTERM and SIGHUP (true) as a flag, or gives each its handler from before
 * (false). A SIGTERM or SIGHUP that is ignored stays ignored.
 * @function catch_sigint
 * @tparam boolean on
 */
int sapwf_core_catch_sigint(lua_State *L)
{
  size_t i;
  int on;
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  on = lua_toboolean(L, 1);
  if (on)
    caught = 0;
  for (i = 0; i < N_SIGNALS; i++) {
    int sig = caught_signals[i];
    if (on && !installed[i]) {
      struct sigaction action, now;
      if (sig != SIGINT && sigaction(sig, NULL, &now) == 0 && now.sa_handler == SIG_IGN)
        continue;
      memset(&action, 0, sizeof action);
      action.sa_handler = on_signal;
      sigemptyset(&action.sa_mask);
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
