-- wrk script for `make bench`: POSTs the same start body with a Bearer header, as every other
-- row of the benchmark does, and sapwf's other headers (its User-Agent from
-- $SAPWF_BENCH_USER_AGENT). The token comes from $SAPWF_BENCH_TOKEN (never a command line).
-- No response() callback: wrk would then parse every answer in Lua and be slower.
wrk.method = "POST"
wrk.body = '{"definitionId":"simple","context":{"order":1}}'
wrk.headers["User-Agent"] = assert(os.getenv("SAPWF_BENCH_USER_AGENT"),
                                  "SAPWF_BENCH_USER_AGENT is not set")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("SAPWF_BENCH_TOKEN"),
                                                   "SAPWF_BENCH_TOKEN is not set")

-- When the measurement ended, on CLOCK_MONOTONIC (as bench/turns.c logs its slots): wrk's
-- Lua is LuaJIT, whose FFI reaches clock_gettime (1 is CLOCK_MONOTONIC on Linux).
local ffi = require "ffi"
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } sapwf_bench_timespec;
  int clock_gettime(int clock, sapwf_bench_timespec *ts);
]]
local function monotonic()
  local ts = ffi.new("sapwf_bench_timespec")
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- One line for bench/run.lua: requests completed, how many failed (an answer >= 400, or a
-- socket error), the seconds it took and when it ended.
function done(summary)
  local e = summary.errors
  io.write(string.format("wrk requests %d errors %d seconds %.3f ended %.6f\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, monotonic()))
end
