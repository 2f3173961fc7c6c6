-- wrk script for `make bench`: POSTs the same start body with a Bearer header, as every other
-- row of the benchmark does. The token comes from $SAPWF_BENCH_TOKEN (never a command line).
-- No response() callback: wrk would then parse every answer in Lua and be slower.
wrk.method = "POST"
wrk.body = '{"definitionId":"simple","context":{"order":1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("SAPWF_BENCH_TOKEN"),
                                                   "SAPWF_BENCH_TOKEN is not set")

-- One line for bench/run.lua: requests completed, how many failed (an answer >= 400, or a
-- socket error), and the seconds it took.
function done(summary)
  local e = summary.errors
  io.write(string.format("wrk requests %d errors %d seconds %.3f\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1e6))
end
