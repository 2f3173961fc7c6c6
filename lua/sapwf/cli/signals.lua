-- Ctrl-C, SIGTERM and SIGHUP while a command calls the service: caught as a flag
-- (core.catch_sigint, src/signal.c) instead of the interpreters' handling. Lua's own Ctrl-C
-- raises "interrupted!" at the next call or return, which may fall between a start's answer
-- and its record, and not before a C call returns: a retry's 30 s wait ran to its end first.
-- SIGTERM and SIGHUP ended the process without a word. With the flag, the first signal ends
-- a GET under way and the waits before a request goes out again at once (the request is then
-- not sent), a start on its way still gets its answer, and each command says what was done;
-- a second signal ends the process at once.
local core = require "sapwf.core"

local M = {}

-- f(...) with the three signals caught as a flag meanwhile, then whether one came and which,
-- and what pcall(f, ...) returned (two values at most): caught, signal, ok, a, b. When none
-- came, the handlers from before are back before this returns, whatever f did. When one
-- came they stay: the command ends because of it (exit 130), and until then the same signal
-- delivered again (timeout(1) sends it to the command and then to its process group) must
-- not end it by the default action, while a second one still does at once (src/signal.c).
function M.during(f, ...)
  core.catch_sigint(true)
  local ok, a, b = pcall(f, ...)
  local caught, signal = core.sigint_caught()
  if not caught then core.catch_sigint(false) end
  return caught, signal, ok, a, b
end

-- f(...)'s two results with the signals caught meanwhile, then whether one came and which:
-- value, err, caught, signal. What f raises goes on once the handlers are back.
function M.around(f, ...)
  local caught, signal, ok, value, err = M.during(f, ...)
  if not ok then
    error(value, 0)
  end
  return value, err, caught, signal
end

return M
