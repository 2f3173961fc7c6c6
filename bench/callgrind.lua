-- `make bench`, instructions per start: each CPU row runs under valgrind's callgrind twice,
-- with N and 2 N starts, against the plain-HTTP emulator (no service time); the difference
-- of the instructions executed (Ir), divided by N, is what one more start costs, without
-- the start-up (the interpreter, loading libcurl and OpenSSL, the token) and the warm-up.
-- Unlike starts per second, instruction counts do not move with what else the machine does.
local format = string.format

local M = {}

function M.run(ctx, lib)
  local run = lib.new(ctx)
  local N = ctx.quick and 300 or 2000
  local url = ctx.api_url .. "/v1/workflow-instances"
  local q = ctx.shell.quote
  local ROWS = {
    { id = "sapwf_loop", label = "sapwf wf:start in a loop",
      command = function(n) return format("%s bench/sapwf_row.lua loop_n %d", ctx.lua, n) end },
    { id = "c_keepalive", label = "C libcurl keep-alive loop",
      command = function() return format("%s/keepalive %s 0", ctx.build, q(url)) end },
    { id = "sapwf_many", label = "sapwf wf:start_many, concurrency 32",
      command = function(n) return format("%s bench/sapwf_row.lua many_n %d 32", ctx.lua,
                                          n) end },
    { id = "core_many", label = "sapwf.core batch + plain lua-cjson both ways, 32 in flight",
      command = function(n) return format("%s bench/sapwf_row.lua core_many_n %d 32", ctx.lua,
                                          n) end },
    { id = "c_multi", label = "C libcurl multi, 32 in flight",
      command = function() return format("%s/multi %s 0 32", ctx.build, q(url)) end },
  }
  local section = { rows = ROWS, targets = {}, n = N }
  local by = {}
  for _, row in ipairs(ROWS) do
    local ir = {}
    for k, n in ipairs({ N, 2 * N }) do
      local env = run.env_file({ { "SAPWF_BENCH_STARTS", format("%d", n) } }, ctx.env_file)
      local out = run.path("callgrind")
      local r = run.measured(env, format("valgrind --tool=callgrind --callgrind-out-file=%s "
        .. "%s", q(out), row.command(n)))
      if r.report.starts ~= n then
        ctx.fail(format("%s under callgrind: %s starts of %d:\n%s", row.id,
                        tostring(r.report.starts), n, r.output))
      end
      local total = (ctx.shell.read_file(out) or ""):match("\nsummary: (%d+)")
        or (ctx.shell.read_file(out) or ""):match("\ntotals: (%d+)")
      if not total then ctx.fail("no instruction total from callgrind for " .. row.id) end
      ir[k] = tonumber(total)
    end
    row.startup = 2 * ir[1] - ir[2]
    row.per_start = (ir[2] - ir[1]) / N
    by[row.id] = row
    ctx.say("  callgrind %-40s %9.0f instructions a start", row.label, row.per_start)
  end
  local cells = {}
  for _, row in ipairs(ROWS) do
    local floor = row.id:match("many") and by.c_multi or row.id:match("loop")
      and by.c_keepalive
    cells[#cells + 1] = { row.label, lib.thousands(row.per_start),
      floor and row ~= floor and format("%.2f", row.per_start / floor.per_start) or "",
      format("%.0f M", row.startup / 1e6) }
  end
  section.table = lib.table({ "", ">instructions a start", ">x the C program",
    ">start-up (instructions)" }, cells)
  section.by = by
  section.what = {
    format("**Instructions per start.** The loop and `start_many` rows of the CPU table and "
      .. "their C programs, each under `valgrind --tool=callgrind` with %s and then %s "
      .. "starts (the C programs count with $SAPWF_BENCH_STARTS): instructions a start = "
      .. "(Ir of the second - Ir of the first) / %s, so the start-up and the warm-up cancel "
      .. "out; \"start-up\" is what is left (2 x the first - the second). The client "
      .. "process only, not the emulator.", lib.thousands(N), lib.thousands(2 * N),
      lib.thousands(N)),
  }
  return section
end

return M
