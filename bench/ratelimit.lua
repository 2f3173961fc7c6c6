-- `make bench`, rate limit: a tenant that refuses beyond R API requests a second (the
-- emulator's token bucket, burst R, 429 with Retry-After) and takes 50 ms a start. One or
-- more client processes stream starts with wf:start_each at concurrency 256 (the ceiling)
-- for SECONDS (bench/ratelimit_row.lua), adaptive (the default) or not. What counts: the
-- 201s a second within SECONDS (goodput), the share of 429s among the tenant's answers,
-- starts lost (the client counted them, the tenant did not, or an item never got a result)
-- and doubled (the tenant saw an item's value twice: starts_doubled), and with several
-- processes each one's share. The rows leave a time series per 100 ms (201s, the batch's
-- concurrency limit) for the chart (docs/bench-ratelimit.png).
local format, concat = string.format, table.concat

local M = {}

local SERVICE_TIME = 0.05
local CONCURRENCY = 256

function M.run(ctx, lib)
  local run = lib.new(ctx)
  local emu = ctx.emu
  local quick = ctx.quick
  local SECONDS = ctx.rate_seconds or (quick and 5 or 60)
  local PLAN = {}
  -- ra: the 429s carry Retry-After (false: none, as SAP's API definition shows its 429)
  local function plan(rate, adaptive, procs, ra)
    PLAN[#PLAN + 1] = { rate = rate, adaptive = adaptive, procs = procs, ra = ra ~= false }
  end
  if quick then
    plan(200, true, 1); plan(2000, true, 1); plan(2000, false, 1); plan(2000, true, 2)
    plan(200, true, 2, false)
  else
    for _, rate in ipairs({ 200, 2000 }) do
      plan(rate, true, 1); plan(rate, false, 1); plan(rate, true, 2); plan(rate, true, 4)
    end
    for _, rate in ipairs({ 200, 2000 }) do
      plan(rate, true, 1, false); plan(rate, true, 4, false)
    end
  end

  local section = { rows = PLAN, targets = {}, seconds = SECONDS }
  for n, r in ipairs(PLAN) do
    -- the bucket is full again when the limits change: every row starts alike
    assert(emu:set_limits{ service_time = SERVICE_TIME, rate = r.rate, count_key = "order",
                           keep_instances = false, retry_after = r.ra })
    local before = emu:stats()
    local commands = {}
    r.series = {}
    for p = 1, r.procs do
      r.series[p] = run.path("series")
      -- values of `order` distinct across rows (the emulator keeps every value it saw) and
      -- across the processes of a row
      commands[p] = format("%s bench/ratelimit_row.lua %d %d %d %d %d %s", ctx.lua, SECONDS,
        CONCURRENCY, r.adaptive and 1 or 0, ctx.order_base + n * 1e8 + p, r.procs,
        ctx.shell.quote(r.series[p]))
    end
    local results = run.parallel(ctx.env_file, commands)
    local d = run.delta(emu:stats(), before)
    local starts, window, items, handed, failures, longest = 0, 0, 0, 0, 0, 0
    r.window = {}
    for p, res in ipairs(results) do
      local rep = res.report
      if not rep.window_starts then ctx.fail("no report from a rate-limit row:\n" .. res.output) end
      starts, window = starts + rep.starts, window + rep.window_starts
      items, handed, failures = items + rep.items, handed + rep.handed, failures + rep.failures
      longest = math.max(longest, rep.seconds)
      r.window[p] = rep.window_starts
    end
    r.goodput = window / SECONDS
    local answered = (d.starts_keyed or 0) + (d.starts_doubled or 0) + (d.starts_unkeyed or 0)
    r.refused = d.rate_limited or 0
    r.requests = d.api_requests or (answered + r.refused)
    r.refused_share = r.refused / math.max(1, r.requests)
    r.keyed, r.doubled, r.unkeyed = d.starts_keyed or 0, d.starts_doubled or 0,
      d.starts_unkeyed or 0
    -- lost: counted as started by the client but not by the tenant, and items never handed
    -- a result; a start the client gave up on (an error) that the tenant made shows as
    -- extra (keyed above the client's count)
    r.lost = math.max(0, starts - r.keyed) + (items - handed)
    r.extra = math.max(0, r.keyed - starts)
    r.failures, r.items, r.starts, r.drain = failures, items, starts, longest - SECONDS
    -- the shape of the first process's series after the first seconds (the full bucket's
    -- burst and the first backoffs): the concurrency limit's range, its drops, and how
    -- even the goodput is (the share of 100 ms steps with no 201 at all)
    local lo, hi, drops, idle, steps, prev, limits = math.huge, 0, 0, 0, 0, nil, {}
    for line in (ctx.shell.read_file(r.series[1]) or ""):gmatch("[^\n]+") do
      local t, n, c = line:match("^(%S+) (%d+) (%d+)")
      t, n, c = tonumber(t), tonumber(n), tonumber(c)
      if t and t >= math.min(5, SECONDS / 2) and t < SECONDS then
        lo, hi, steps = math.min(lo, c), math.max(hi, c), steps + 1
        limits[#limits + 1] = c
        if n == 0 then idle = idle + 1 end
      end
      if prev and c < prev then drops = drops + 1 end
      prev = c
    end
    r.shape = { lo = lo, hi = hi, median = lib.median(limits) or 0, drops = drops,
                idle = idle / math.max(1, steps), from = math.min(5, SECONDS / 2) }
    local shares = {}
    for p, w in ipairs(r.window) do shares[p] = format("%.0f%%", w / math.max(1, window) * 100) end
    r.shares = concat(shares, " / ")
    ctx.say("  rate     R %4d %-12s %-17s %d process(es): %7.1f starts/s (%.2f x R), 429s %s, "
      .. "lost %d, doubled %d", r.rate, r.adaptive and "adaptive" or "not adaptive",
      r.ra and "Retry-After" or "no Retry-After", r.procs,
      r.goodput, r.goodput / r.rate, lib.pct(r.refused_share), r.lost, r.doubled)
  end
  assert(emu:set_limits{})

  -- The table.
  local cells = {}
  for _, r in ipairs(PLAN) do
    cells[#cells + 1] = {
      lib.thousands(r.rate), r.adaptive and "adaptive" or "fixed 256", r.ra and "yes" or "no",
      format("%d", r.procs),
      format("%.1f", r.goodput), format("%.2f", r.goodput / r.rate), lib.pct(r.refused_share),
      lib.thousands(r.requests), format("%d", r.lost), format("%d", r.doubled),
      format("%d", r.failures), format("%.1f s", r.drain), r.procs > 1 and r.shares or "",
    }
  end
  section.table = lib.table({ ">R", "limiter", "Retry-After", ">processes", ">goodput (201/s)", ">x R",
    ">429s", ">requests", ">lost", ">doubled", ">errors handed", ">drain", "shares" }, cells)

  -- The targets.
  local function target(name, figure, holds)
    section.targets[#section.targets + 1] = { name = name, figure = figure, holds = holds }
  end
  -- a row's name in the targets and notes
  local function row_name(r)
    return format("R = %s, %s%s", lib.thousands(r.rate),
                  r.adaptive and "adaptive" or "fixed 256", r.ra and "" or ", no Retry-After")
  end
  for _, r in ipairs(PLAN) do
    if r.procs == 1 and r.adaptive then
      target(format("%s: goodput >= 0.9 x R", row_name(r)),
             format("%.1f/s = %.2f x R", r.goodput, r.goodput / r.rate),
             r.goodput >= 0.9 * r.rate)
      target(format("%s: 429s <= 5%% of requests", row_name(r)),
             format("%s (%s of %s)", lib.pct(r.refused_share), lib.thousands(r.refused),
                    lib.thousands(r.requests)), r.refused_share <= 0.05)
    end
  end
  local lost, doubled, rows = 0, 0, {}
  for _, r in ipairs(PLAN) do
    lost, doubled = lost + r.lost, doubled + r.doubled
    rows[#rows + 1] = format("%d/%d", r.lost, r.doubled)
  end
  target("under a rate limit: 0 lost, 0 doubled starts (every row)",
         format("lost/doubled by row: %s", concat(rows, ", ")), lost == 0 and doubled == 0)
  for _, r in ipairs(PLAN) do
    if r.procs > 1 then
      local lo, hi = math.huge, 0
      for _, w in ipairs(r.window) do lo, hi = math.min(lo, w), math.max(hi, w) end
      target(format("R = %s, %d processes%s: total >= 0.85 x R, none below half another's "
        .. "share", lib.thousands(r.rate), r.procs, r.ra and "" or ", no Retry-After"),
        format("%.2f x R; shares %s", r.goodput / r.rate, r.shares),
        r.goodput >= 0.85 * r.rate and lo >= 0.5 * hi)
    end
  end

  section.notes = {}
  for _, r in ipairs(PLAN) do
    if r.procs == 1 then
      section.notes[#section.notes + 1] = format("%s: from %g s to the end the "
        .. "concurrency limit stayed between %d and %d (median %g; %d drops over the row), "
        .. "and %s of the 100 ms steps had no 201 at all.", row_name(r), r.shape.from, r.shape.lo, r.shape.hi,
        r.shape.median, r.shape.drops, lib.pct(r.shape.idle))
    end
  end
  section.what = {
    format("**Rate limit.** The same plain-HTTP emulator with a service time of %d ms and a "
      .. "token bucket over every API request (rate R, burst R, full at the start of each "
      .. "row; a refusal is a 429 at once, with Retry-After in whole seconds, or, in the rows "
      .. "marked so, without one, as SAP's API definition shows its 429). Each client "
      .. "process (bench/ratelimit_row.lua) streams items `{order = n}` into `wf:start_each` "
      .. "with concurrency %d as the ceiling for %d s, then stops asking for items and lets "
      .. "the starts in flight end (\"drain\"). Goodput counts the 201s within those %d s; "
      .. "the 429 share and the requests are the emulator's counts; lost = starts the "
      .. "client counted that the tenant did not (starts_keyed) plus items never handed a "
      .. "result; doubled = the tenant's starts_doubled (an `order` value started twice). "
      .. "\"fixed 256\" is `adaptive = false`: the ceiling always, and a 429 goes through "
      .. "the ordinary retries. With 2 or 4 processes on one tenant, each one's share of "
      .. "the goodput. The bucket starts full, so the first second lets R more through: "
      .. "over %d s that is %.0f%% on top of R.", SERVICE_TIME * 1000, CONCURRENCY, SECONDS,
      SECONDS, SECONDS, 100 / SECONDS),
  }
  return section
end

-- The chart: goodput (201s a second, per 100 ms) and the concurrency limit over time for
-- the one-process adaptive rows, and each process's starts over time for the row with the
-- most processes. Returns true, or nil and why not.
function M.chart(ctx, section, png)
  local shell, quote = ctx.shell, ctx.shell.quote
  local panels, plots = {}, {}
  for _, r in ipairs(section.rows) do
    if r.procs == 1 and r.adaptive and r.ra then panels[#panels + 1] = r end
  end
  local many
  for _, r in ipairs(section.rows) do
    if r.adaptive and r.procs > 1 and (not many or r.procs > many.procs
        or (r.procs == many.procs and r.rate > many.rate)) then many = r end
  end
  for _, r in ipairs(panels) do
    plots[#plots + 1] = format(
      "set title 'R = %d/s, adaptive, 1 process (concurrency ceiling 256)'\n"
      .. "set ylabel '201s a second'; set y2label 'concurrency limit'\n"
      .. "set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*]\n"
      .. "plot %s using 1:($2*10) with lines lc rgb '#4a90d9' title 'goodput (per 100 ms)', "
      .. "%d with lines dt 2 lc rgb '#333333' title 'R', "
      .. "%s using 1:3 axes x1y2 with steps lw 2 lc rgb '#d94a4a' title 'concurrency limit'\n",
      r.rate, quote(r.series[1]), r.rate, quote(r.series[1]))
  end
  if many then
    -- each process's cumulative starts: the slopes are the shares
    local cumulative, lines = {}, {}
    for p, file in ipairs(many.series) do
      local sum, out = 0, {}
      for line in (shell.read_file(file) or ""):gmatch("[^\n]+") do
        local t, n = line:match("^(%S+) (%d+)")
        sum = sum + tonumber(n)
        out[#out + 1] = t .. " " .. sum
      end
      cumulative[p] = file .. ".sum"
      shell.write_file(cumulative[p], table.concat(out, "\n") .. "\n")
      lines[p] = format("%s using 1:2 with lines lw 2 title 'process %d'", quote(cumulative[p]),
                        p)
    end
    plots[#plots + 1] = format(
      "set title 'R = %d/s, %d processes on one tenant, adaptive: starts of each'\n"
      .. "set ylabel 'starts so far'; unset y2label; unset y2tics; set ytics mirror\n"
      .. "set yrange [0:*]\nplot %s\n", many.rate, many.procs, table.concat(lines, ", "))
  end
  if #plots == 0 then return nil, "no rows to chart" end
  local script = ctx.tmp .. "/chart.gp"
  shell.write_file(script, format("set terminal pngcairo size 1000,%d font 'sans,9'\n"
    .. "set output %s\nset multiplot layout %d,1\nset xlabel 'seconds'\nset grid\n"
    .. "set key top right\n%s\nunset multiplot\n", 330 * #plots, quote(png), #plots,
    table.concat(plots, "\n")))
  if not shell.run("gnuplot " .. quote(script) .. " 2>" .. quote(ctx.tmp .. "/gnuplot.err")) then
    return nil, "gnuplot failed: " .. (shell.read_file(ctx.tmp .. "/gnuplot.err") or "")
  end
  return true
end

return M
