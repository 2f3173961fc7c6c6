/* For .ci/run's ASan stage: preloaded after the ASan runtime into the one process that runs
 * the specs, it removes LD_PRELOAD from that process's environment as it starts. The ASan
 * runtime is loaded by then; the processes the specs start (nginx, curl, openssl, lua5.4
 * bin/sapwf) then run without it: curl deadlocks at start-up under a preloaded ASan runtime.
 * MIT licence, see LICENSE. */
#include <stdlib.h>

__attribute__((constructor)) static void strip_preload(void)
{
  unsetenv("LD_PRELOAD");
}
