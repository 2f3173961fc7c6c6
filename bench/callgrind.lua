-- `make bench`, instructions per start: each CPU row runs under valgrind's callgrind twice,
-- with N and 2 N starts, against the plain-HTTP emulator (no service time); the difference
-- of the instructions executed (Ir), divided by N, is what one more start costs, without
-- the start-up (the interpreter, loading libcurl and OpenSSL, the token) and the warm-up.
-- Unlike starts per second, instruction counts do not move with what else the machine does.
local defaults = require "sapwf.emulator.defaults"

local format = string.format

-- The client of the rows with a long token.
local EVERY_CLIENT_ID = "sb-sapwf-bench-every!b1|workflow!b10150"

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
    { id = "core_many_keep",
      label = "sapwf.core batch + plain lua-cjson both ways, answers kept, 32 in flight",
      command = function(n) return format("%s bench/sapwf_row.lua core_many_keep_n %d 32",
                                          ctx.lua, n) end },
    { id = "core_many_drop",
      label = "sapwf.core batch + plain lua-cjson out, answers dropped, 32 in flight",
      command = function(n) return format("%s bench/sapwf_row.lua core_many_drop_n %d 32",
                                          ctx.lua, n) end },
    { id = "c_multi", label = "C libcurl multi, 32 in flight",
      command = function() return format("%s/multi %s 0 32", ctx.build, q(url)) end },
  }
  -- The same two rows with a client that holds every authority, so a token several times
  -- as long: libcurl formats each header byte by byte (about 90 instructions a byte), sapwf
  -- adds the same whatever the token, so "x the C program" moves with the token's length.
  local every_env, _, every_bytes = run.client_env(ctx.emu, false,
    { id = EVERY_CLIENT_ID, authorities = defaults.authorities })
  local command = {}
  for _, row in ipairs(ROWS) do command[row.id] = row.command end
  local LONG = {
    { id = "sapwf_many_long", label = "sapwf wf:start_many, concurrency 32",
      env = every_env, command = command.sapwf_many },
    { id = "c_multi_long", label = "C libcurl multi, 32 in flight",
      env = every_env, command = command.c_multi },
  }
  for _, row in ipairs(LONG) do
    row.label = format("%s, a %s-byte token (every authority)", row.label,
                       lib.thousands(every_bytes))
    ROWS[#ROWS + 1] = row
  end
  local section = { rows = ROWS, targets = {}, n = N }
  local by = {}
  for _, row in ipairs(ROWS) do
    local ir, last = {}, nil
    for k, n in ipairs({ N, 2 * N }) do
      local env = run.env_file({ { "SAPWF_BENCH_STARTS", format("%d", n) } },
                               row.env or ctx.env_file)
      local out = run.path("callgrind")
      local r = run.measured(env, format("valgrind --tool=callgrind --callgrind-out-file=%s "
        .. "%s", q(out), row.command(n)))
      last = r.report
      if r.report.starts ~= n then
        ctx.fail(format("%s under callgrind: %s starts of %d:\n%s", row.id,
                        tostring(r.report.starts), n, r.output))
      end
      local total = (ctx.shell.read_file(out) or ""):match("\nsummary: (%d+)")
        or (ctx.shell.read_file(out) or ""):match("\ntotals: (%d+)")
      if not total then ctx.fail("no instruction total from callgrind for " .. row.id) end
      ir[k] = tonumber(total)
    end
    row.answer_bytes, row.answer_fields = last.answer_bytes, last.answer_fields
    row.startup = 2 * ir[1] - ir[2]
    row.per_start = (ir[2] - ir[1]) / N
    by[row.id] = row
    ctx.say("  callgrind %-40s %9.0f instructions a start", row.label, row.per_start)
  end
  local cells = {}
  for _, row in ipairs(ROWS) do
    local floor = row.id == "sapwf_many_long" and by.c_multi_long
      or row.id:match("many") and by.c_multi or row.id:match("loop") and by.c_keepalive
    cells[#cells + 1] = { row.label, lib.thousands(row.per_start),
      floor and row ~= floor and format("%.2f", row.per_start / floor.per_start) or "",
      format("%.0f M", row.startup / 1e6) }
  end
  section.table = lib.table({ "", ">instructions a start", ">x the C program",
    ">start-up (instructions)" }, cells)
  section.by = by
  section.token_bytes = every_bytes
  -- what sapwf adds to a start, and what libcurl spends on each byte of the token
  local own = by.sapwf_many.per_start - by.c_multi.per_start
  local own_long = by.sapwf_many_long.per_start - by.c_multi_long.per_start
  local per_byte = (by.c_multi_long.per_start - by.c_multi.per_start)
    / (every_bytes - ctx.token_bytes)
  section.notes = {
    format("Decoding each answer into a Lua table with plain lua-cjson (%s bytes of JSON, "
      .. "%d fields), and collecting it later, costs %s instructions a start: the "
      .. "sapwf.core batch row with the answers dropped, as the C loop drops them, reaches "
      .. "%.2f x the C program by instructions, with them decoded %.2f. Keeping them, as "
      .. "`start_many` returns its results, costs %s more (the collector marks every kept "
      .. "table again in each of its cycles): %.2f, the most any Lua program on sapwf.core "
      .. "and lua-cjson that hands back its answers reaches, before any work of its own.",
      lib.thousands(by.core_many_drop.answer_bytes), by.core_many_drop.answer_fields,
      lib.thousands(by.core_many.per_start - by.core_many_drop.per_start),
      by.c_multi.per_start / by.core_many_drop.per_start,
      by.c_multi.per_start / by.core_many.per_start,
      lib.thousands(by.core_many_keep.per_start - by.core_many.per_start),
      by.c_multi.per_start / by.core_many_keep.per_start),
    format("`wf:start_many` over the C multi loop: %s instructions a start with the %s-byte "
      .. "token, %s with the %s-byte one; the C loop spends %.0f instructions on each more "
      .. "byte of the token (libcurl's header formatting). So \"x the C program\" is %.2f "
      .. "with the first token and %.2f with the second: the same sapwf, measured against a "
      .. "floor that grows with the token.", lib.thousands(own), lib.thousands(ctx.token_bytes),
      lib.thousands(own_long), lib.thousands(every_bytes), per_byte,
      by.sapwf_many.per_start / by.c_multi.per_start,
      by.sapwf_many_long.per_start / by.c_multi_long.per_start),
  }
  section.what = {
    format("**Instructions per start.** The loop and `start_many` rows of the CPU table, "
      .. "their C programs, and the Lua program on sapwf.core's batch with its answers "
      .. "decoded and dropped, decoded and kept (in lists of 2,000, as `start_many` returns "
      .. "them), and not decoded, each under `valgrind --tool=callgrind` with %s and then %s "
      .. "starts (the C programs count with $SAPWF_BENCH_STARTS): instructions a start = "
      .. "(Ir of the second - Ir of the first) / %s, so the start-up and the warm-up cancel "
      .. "out; \"start-up\" is what is left (2 x the first - the second). The client "
      .. "process only, not the emulator. The last two rows run the same programs with "
      .. "another client of the same emulator, one that holds every authority, so its token "
      .. "is %s bytes instead of %s.", lib.thousands(N), lib.thousands(2 * N),
      lib.thousands(N), lib.thousands(every_bytes), lib.thousands(ctx.token_bytes)),
  }
  return section
end

return M
