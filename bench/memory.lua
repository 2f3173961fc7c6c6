-- `make bench`, memory: wf:start_each streams N starts (items made as it asks for them,
-- concurrency 32) against a tenant that answers at once and keeps nothing
-- (keep_instances = false); the client process's peak RSS (GNU time) for N and 10 N shows
-- whether anything of an item outlives it. The tenant counts every `order` value it saw
-- (count_key), so the row also tells that each item was started once.
local format = string.format

local M = {}

function M.run(ctx, lib)
  local run = lib.new(ctx)
  local emu = ctx.emu
  local SIZES = ctx.quick and { 10000, 20000 } or { 100000, 1000000 }
  local section = { rows = {}, targets = {} }
  assert(emu:set_limits{ count_key = "order", keep_instances = false })
  for n, size in ipairs(SIZES) do
    local base = ctx.order_base + 50e8 + n * 1e8        -- values no other row used
    local env = run.env_file({ { "SAPWF_BENCH_ORDER_BASE", format("%d", base) } },
                             ctx.env_file)
    local before = emu:stats()
    local r = run.measured(env, format("%s bench/sapwf_row.lua stream %d 32", ctx.lua, size))
    local d = run.delta(emu:stats(), before)
    local rep = r.report
    if not rep.handed then ctx.fail("no report from the memory row:\n" .. r.output) end
    local row = { size = size, rss = r.rss, rate = rep.starts / rep.seconds,
                  starts = rep.starts, failures = rep.failures, handed = rep.handed,
                  keyed = d.starts_keyed or 0, doubled = d.starts_doubled or 0,
                  unkeyed = d.starts_unkeyed or 0, cpu = r.cpu / math.max(1, rep.starts) }
    section.rows[n] = row
    ctx.say("  stream   %d starts: peak RSS %d kB, %.0f starts/s", size, r.rss, row.rate)
  end
  assert(emu:set_limits{})

  local cells = {}
  for _, row in ipairs(section.rows) do
    cells[#cells + 1] = { lib.thousands(row.size), lib.thousands(row.rate),
      lib.mib(row.rss), lib.thousands(row.starts), format("%d", row.failures),
      lib.thousands(row.keyed), format("%d", row.doubled), format("%d", row.unkeyed),
      format("%d us", math.floor(row.cpu * 1e6 + 0.5)) }
  end
  section.table = lib.table({ ">streamed starts", ">starts/s", ">peak RSS", ">201s",
    ">errors", ">tenant: first starts", ">doubled", ">not counted", ">CPU per start" }, cells)

  local small, big = section.rows[1], section.rows[2]
  local all_once = true
  for _, row in ipairs(section.rows) do
    all_once = all_once and row.keyed == row.size and row.doubled == 0 and row.handed == row.size
  end
  section.targets[1] = {
    name = format("%s streamed starts: peak RSS < 64 MiB and within 8 MiB of the %s run",
                  lib.thousands(big.size), lib.thousands(small.size)),
    figure = format("%s (%s: %s, %+.1f MiB)", lib.mib(big.rss), lib.thousands(small.size),
                    lib.mib(small.rss), (big.rss - small.rss) / 1024),
    holds = big.rss < 64 * 1024 and math.abs(big.rss - small.rss) <= 8 * 1024,
  }
  section.targets[2] = {
    name = "streamed starts: each item started once and handed its result",
    figure = format("%s and %s items: %s and %s first starts, %d and %d doubled",
      lib.thousands(small.size), lib.thousands(big.size), lib.thousands(small.keyed),
      lib.thousands(big.keyed), small.doubled, big.doubled),
    holds = all_once,
  }
  section.what = {
    format("**Memory.** `wf:start_each` over %s and %s items made by its iterator "
      .. "(`context = {order = n}`, concurrency 32, bench/sapwf_row.lua stream), each run "
      .. "a process of its own, against the plain-HTTP emulator with no service time and "
      .. "`keep_instances = false` (it keeps no instance, only each `order` value it saw, "
      .. "to count first and doubled starts). Peak RSS is GNU time's maximum resident set "
      .. "of the client process.", lib.thousands(SIZES[1]), lib.thousands(SIZES[2])),
  }
  return section
end

return M
