/* core.catch_sigint / core.sigint_caught: Ctrl-C as a flag the command line's bulk start
 * reads between batches. The interpreters' own SIGINT handling raises "interrupted!" from a
 * hook at the next call or return: Lua 5.4 and 5.1 set it on the main thread only, but
 * LuaJIT's hook is global, so it could fire inside a batch whose starts were sent, losing
 * the ids of instances that exist. With this handler installed the interpreter's never runs;
 * a second Ctrl-C ends the process at once, as the command line promises.
 * For the command line only: a signal handler belongs to the process, not to a library.
 * MIT licence, see LICENSE. */
#include "sapwf.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t caught;
static struct sigaction previous;
static int installed;

static void on_sigint(int sig)
{
  if (caught) {                           /* the second Ctrl-C: the default action, now */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  caught = 1;
}


/***
 * Catches Ctrl-C (true) as a flag, or gives SIGINT back its handler from before (false).
 * @function catch_sigint
 * @tparam boolean on
 */
int sapwf_core_catch_sigint(lua_State *L)
{
  int on;
  luaL_checktype(L, 1, LUA_TBOOLEAN);
  on = lua_toboolean(L, 1);
  if (on && !installed) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    caught = 0;
    if (sigaction(SIGINT, &action, &previous) == 0)
      installed = 1;
  } else if (!on && installed) {
    sigaction(SIGINT, &previous, NULL);
    installed = 0;
  }
  return 0;
}


/***
 * Whether Ctrl-C came since catch_sigint(true).
 * @function sigint_caught
 * @treturn boolean
 */
int sapwf_core_sigint_caught(lua_State *L)
{
  lua_pushboolean(L, caught != 0);
  return 1;
}
