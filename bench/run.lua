-- `make bench`: starts per second of sapwf and of the usual alternatives, side by side, in one
-- run against one local emulator; prints the table and, unless --quick, writes BENCHMARKS.md.
--
--   lua5.4 bench/run.lua --build build/bench [--quick] [--out BENCHMARKS.md] [--workers N]
--                        [--chart docs/bench-ratelimit.png] [--only SECTION,...]
--
-- --build: where `make bench` put the C programs (keepalive, multi) and the module
-- (<build>/<lua>/sapwf/core.so, already on package.cpath). --quick: one short round, for CI,
-- and no BENCHMARKS.md (unless --out names one, to see the layout) nor chart (its figures
-- are not the targets). --only: just these of the sections latency, ratelimit, memory,
-- callgrind (bench/<name>.lua), printed, no BENCHMARKS.md (the rate-limit chart, out of
-- --quick): to try one section, or to run the long rate-limit rows alone.
--
-- The sections after the CPU rows below (bench/latency.lua, ratelimit.lua, memory.lua,
-- callgrind.lua, sharing bench/benchlib.lua) each return their table, targets and what they
-- do; this file puts them together in BENCHMARKS.md.
--
-- Every row runs in a process of its own for the same number of seconds against the same
-- emulator, with the same start body, on the same client credentials, in rounds; within a
-- round the rows with as many requests in flight take turns in short slots (bench/turns.c),
-- and the table shows each row's median. Peak RSS is GNU time's
-- maximum resident set of the row's process (for the shell loop: of its largest curl), and CPU
-- per start the user and system time of the process (and its children) over its starts.
-- Token requests are what the emulator counted during the row.


---------------------------------------------------------------------------------------------
-- Options

local opts = { build = "build/bench", out = "BENCHMARKS.md", workers = 1, pin = false,
               chart = "docs/bench-ratelimit.png" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--quick" then opts.quick = true
    elseif a == "--build" then i = i + 1; opts.build = arg[i]
    elseif a == "--out" then i = i + 1; opts.out = arg[i]; opts.out_given = true
    elseif a == "--workers" then i = i + 1; opts.workers = tonumber(arg[i])
    elseif a == "--pin" then opts.pin = true
    elseif a == "--chart" then i = i + 1; opts.chart = arg[i]
    elseif a == "--only" then i = i + 1; opts.only = arg[i]
    else error("unknown argument " .. a) end
    i = i + 1
  end
end

-- This checkout's Lua layer and the module `make bench` built for this interpreter.
local LUA = arg[-1] or "lua5.4"
package.path = "./lua/?.lua;./lua/?/init.lua;./emulator/lua/?.lua;./emulator/lua/?/init.lua;"
  .. package.path
package.cpath = opts.build .. "/" .. LUA:match("[^/]*$") .. "/?.so;" .. package.cpath

local emulator = require "sapwf.emulator"
local shell = require "sapwf.emulator.shell"
local core = require "sapwf.core"
local cjson = require "cjson"

local format, concat = string.format, table.concat
local quote = shell.quote

local QUICK = opts.quick
local STARTED = os.time()
local ROUNDS = QUICK and 1 or 7
local SECONDS = QUICK and 1 or 2
local RSS_STARTS = QUICK and 20000 or 200000
local IN_FLIGHT = 32
local CLIENT_ID = "sb-sapwf-bench!b1|workflow!b10150"
-- What sapwf sends by default (src/client.c): the rows that build their own request send it
-- too (bench/common.h, bench/start.lua).
local USER_AGENT = "sapwf/" .. core.version

local function say(fmt, ...)
  io.stderr:write(format(fmt, ...), "\n")
end

local function fail(message)
  io.stderr:write("bench: ", message, "\n")
  os.exit(1)
end

---------------------------------------------------------------------------------------------
-- What is installed

local function found(command)
  return shell.run("command -v " .. command .. " >/dev/null 2>&1")
end

local GNU_TIME = "/usr/bin/time"
if not shell.run(GNU_TIME .. " -f %M true >/dev/null 2>&1") then
  fail("GNU time is missing (apt-get install time)")
end
for _, command in ipairs({ "wrk", "curl", "bash", "awk", "h2load", "node", "valgrind",
                           "gnuplot" }) do
  if not found(command) then fail(command .. " is missing (make bench installs it)") end
end
for _, program in ipairs({ "keepalive", "multi", "turns" }) do
  if not shell.read_file(opts.build .. "/" .. program) then
    fail(opts.build .. "/" .. program .. " is missing: run `make bench`")
  end
end

-- The first python3 that has requests: the one on PATH, else Debian's (python3-requests).
local PYTHON
for _, candidate in ipairs({ "python3", "/usr/bin/python3" }) do
  if shell.run(candidate .. " -c 'import requests' >/dev/null 2>&1") then
    PYTHON = candidate
    break
  end
end
if not PYTHON then fail("no python3 with requests (apt-get install python3-requests)") end

---------------------------------------------------------------------------------------------
-- The emulator and the client every row uses

local tmp = shell.line("mktemp -d /tmp/sapwf-bench.XXXXXX")
if tmp == "" then fail("mktemp failed") end

-- key_memory: the rate-limit and memory sections have the emulator remember every `order`
-- value started (about 8,000 a megabyte), 1.6 million in a full run.
local emu, err = emulator.start{ workers = opts.workers, tls = false, max_instances = 20000,
                                 key_memory = QUICK and 32 or 256 }
if not emu then fail("cannot start the emulator: " .. tostring(err)) end

-- --pin: nginx on the last CPU, every row on CPU 0 (taskset).
local PIN = ""
if opts.pin then
  local last = tonumber(shell.line("nproc")) - 1
  shell.run(format("for p in %d $(pgrep -P %d); do taskset -pc %d $p >/dev/null; done",
                   emu.pid, emu.pid, last))
  PIN = "taskset -c 0 "
end

local function cleanup()
  emu:stop()
  shell.run("rm -rf " .. quote(tmp))
end

-- A technical client with the one authority a bulk start needs, as such a job should have.
local secret = shell.random_hex(24)
emu:set_client(CLIENT_ID, { secret = secret, authorities = { "WORKFLOW_INSTANCE_START" } })
local key = emu:service_key(CLIENT_ID)
local api_url = key.endpoints.workflow_rest_url
local token_url = key.uaa.url .. "/oauth/token"

-- The token the C programs and wrk are given (fetched here, with the curl command line).
local auth_file = tmp .. "/auth"
shell.write_file(auth_file, format('user = "%s:%s"\n', CLIENT_ID, secret))
local token = cjson.decode(shell.capture("curl -sS -K " .. quote(auth_file)
  .. " -d grant_type=client_credentials " .. quote(token_url))).access_token
if type(token) ~= "string" then cleanup(); fail("no token from the emulator") end

-- Secrets and tokens reach the rows through this file, sourced by the shell that starts
-- them: never on a command line.
local env_file = tmp .. "/env"
shell.run("umask 077; : > " .. quote(env_file))
shell.write_file(env_file, concat({
  "export SAPWF_BENCH_TOKEN=" .. quote(token),
  "export SAPWF_BENCH_USER_AGENT=" .. quote(USER_AGENT),
  "export SAPWF_BENCH_KEY=" .. quote(cjson.encode(key)),
  "export SAPWF_BENCH_API_URL=" .. quote(api_url),
  "export SAPWF_BENCH_TOKEN_URL=" .. quote(token_url),
  "export SAPWF_BENCH_CLIENT_ID=" .. quote(CLIENT_ID),
  "export SAPWF_BENCH_CLIENT_SECRET=" .. quote(secret),
  "export LUA_PATH=" .. quote(package.path),
  "export LUA_CPATH=" .. quote(package.cpath),
}, "\n") .. "\n")

---------------------------------------------------------------------------------------------
-- The rows

local START_URL = api_url .. "/v1/workflow-instances"

-- group: the rows that take turns with each other (bench/turns.c): the lean programs with
-- one start in flight (wrk and the libcurl rows) and those with IN_FLIGHT. The rows of what
-- users do today run on their own, one after the other: their target (10 x) is coarse, and
-- in the same rotation they move the others. Python's Session row there cost the Lua rows
-- about 9% against the C loop (wf:start: 0.76-0.87, median 0.82, in five rounds with it;
-- 0.86-0.94, median 0.90, in seven without), an interpreter of 28 MB working through
-- 850 us of CPU per start between their slots. The tutorial's row also fetches a token
-- per start, which would blur its group's count.
-- command(s): the row for s seconds of the clock on the wall.
local ROWS = {
  { id = "wrk1", label = "wrk, 1 connection (the limit)", flight = 1, given = true,
    group = "one",
    command = function(s) return format("wrk -t1 -c1 -d%ds -s bench/start.lua %s", s,
                                        quote(START_URL)) end },
  { id = "wrk32", label = "wrk, 32 connections (the limit)", flight = IN_FLIGHT, given = true,
    group = "many",
    command = function(s) return format("wrk -t1 -c%d -d%ds -s bench/start.lua %s",
                                        IN_FLIGHT, s, quote(START_URL)) end },
  { id = "c_keepalive", label = "C libcurl keep-alive loop (floor)", flight = 1, given = true,
    group = "one",
    command = function(s) return format("%s/keepalive %s %d", opts.build, quote(START_URL),
                                        s) end },
  { id = "c_multi", label = "C libcurl multi, 32 in flight (floor)", flight = IN_FLIGHT,
    given = true, group = "many",
    command = function(s) return format("%s/multi %s %d %d", opts.build, quote(START_URL), s,
                                        IN_FLIGHT) end },
  { id = "core_loop", label = "sapwf.core client:request alone (no Lua layer, no JSON)",
    flight = 1, group = "one", part = true,
    command = function(s) return format("%s bench/sapwf_row.lua core %d", LUA, s) end },
  { id = "core_json", label = "sapwf.core + plain lua-cjson both ways", flight = 1,
    group = "one", part = true,
    command = function(s) return format("%s bench/sapwf_row.lua core_json %d", LUA, s) end },
  { id = "sapwf_loop", label = "sapwf wf:start in a loop", flight = 1, sapwf = true,
    group = "one",
    command = function(s) return format("%s bench/sapwf_row.lua loop %d", LUA, s) end },
  { id = "sapwf_many", label = "sapwf wf:start_many, concurrency 32", flight = IN_FLIGHT,
    sapwf = true, group = "many",
    command = function(s) return format("%s bench/sapwf_row.lua many %d %d", LUA, s,
                                        IN_FLIGHT) end },
  -- OpenResty's LuaJIT, with the module `make bench` built for it beside this one's.
  { id = "sapwf_many_jit", label = "sapwf wf:start_many, concurrency 32, on LuaJIT",
    flight = IN_FLIGHT, sapwf = true, group = "many",
    command = function(s) return format("env LUA_CPATH=%s luajit bench/sapwf_row.lua many %d "
      .. "%d", quote(opts.build .. "/luajit/?.so;;"), s, IN_FLIGHT) end },
  { id = "core_many", label = "sapwf.core batch + plain lua-cjson both ways, 32 in flight",
    flight = IN_FLIGHT, group = "many", part = true,
    command = function(s) return format("%s bench/sapwf_row.lua core_many %d %d", LUA, s,
                                        IN_FLIGHT) end },
  { id = "core_many_keep",
    label = "the same, each answer kept in a list of 2,000 (as start_many returns them)",
    flight = IN_FLIGHT, group = "many", part = true,
    command = function(s) return format("%s bench/sapwf_row.lua core_many_keep %d %d", LUA,
                                        s, IN_FLIGHT) end },
  { id = "py_session", label = "Python requests, Session", flight = 1,
    command = function(s) return format("%s bench/requests_session.py %d", PYTHON, s) end },
  { id = "py_tutorial", label = "Python requests, token per start (tutorial)", flight = 1,
    command = function(s) return format("%s bench/requests_tutorial.py %d", PYTHON, s) end },
  { id = "curl_cli", label = "curl command line per start", flight = 1,
    command = function(s) return format("bash bench/curl_loop.sh %d", s) end },
}
local BY_ID = {}
for _, row in ipairs(ROWS) do
  BY_ID[row.id] = row
  row.rates, row.tokens, row.rss, row.cpu, row.failures = {}, {}, {}, {}, 0
end

-- Runs command under GNU time with the environment file; returns its output, peak RSS (kB)
-- and CPU time (user + system, seconds).
local function run_measured(command)
  local out, time_file = tmp .. "/out", tmp .. "/time"
  local ok = shell.run(format("bash -c %s >%s 2>&1", quote(". " .. quote(env_file)
    .. " && exec " .. PIN .. GNU_TIME .. " -f '%M %U %S' -o " .. quote(time_file) .. " "
    .. command), quote(out)))
  local output = shell.read_file(out) or ""
  local rss, user, sys = (shell.read_file(time_file) or ""):match("(%d+) ([%d.]+) ([%d.]+)%s*$")
  if not ok or not rss then fail("a row failed: " .. command .. "\n" .. output) end
  return output, tonumber(rss), tonumber(user) + tonumber(sys)
end

-- starts, seconds, failures, ended (monotonic; nil for the curl loop) from a row's output.
local function parse(output)
  local requests, errors, took, ended = output:match(
    "wrk requests (%d+) errors (%d+) seconds ([%d.]+) ended ([%d.]+)")
  if requests then
    return tonumber(requests) - tonumber(errors), tonumber(took), tonumber(errors),
      tonumber(ended)
  end
  local starts, seconds, failures = output:match("starts (%d+) seconds ([%d.]+) failures (%d+)")
  if not starts then return nil end
  return tonumber(starts), tonumber(seconds), tonumber(failures),
    tonumber(output:match(" ended ([%d.]+)"))
end

local function token_requests()
  return emu:stats().token_requests
end

-- ran: the seconds of its measurement the row really ran (taking turns), else its length.
local function record(row, output, rss, cpu, tokens, ran)
  local starts, seconds, failures, ended = parse(output)
  if not starts or starts == 0 then
    fail("no starts in the output of " .. row.id .. ":\n" .. output)
  end
  if type(ran) == "function" then
    if not ended then fail("no end time in the output of " .. row.id .. ":\n" .. output) end
    seconds = ran(ended - seconds, ended)
  end
  row.rates[#row.rates + 1] = starts / seconds
  row.tokens[#row.tokens + 1] = tokens
  row.rss[#row.rss + 1] = rss
  row.cpu[#row.cpu + 1] = cpu / starts
  row.failures = row.failures + failures
end

local function run_row(row)
  local before = token_requests()
  local output, rss, cpu = run_measured(row.command(SECONDS))
  record(row, output, rss, cpu, token_requests() - before)
end

-- A group of rows taking turns (bench/turns.c): all start at once and each runs only in its
-- slots of TURN_SLOT seconds, round robin, the others stopped, so whatever else the machine
-- does falls on all of them alike. Each runs for COUNT x SECONDS on the wall, which gives it
-- about SECONDS of its own; its rate counts the time it really ran during its measurement
-- (the slots the log shows, cut to the span its output names). The first slot goes to
-- another row each round. Token requests are counted for the group: each row that fetches
-- its own is given one when the group made exactly one per such row, else the group's
-- total (so the target shows it).
local TURN_SLOT = 0.05
local function run_group(group, round)
  local before = token_requests()
  local n = #group
  local order, parts, files, fetching = {}, {}, {}, 0
  for k = 1, n do order[k] = group[(k - 1 + round) % n + 1] end
  for k, row in ipairs(order) do
    local f = { out = format("%s/out%d", tmp, k), time = format("%s/time%d", tmp, k) }
    files[k] = f
    if not row.given then fetching = fetching + 1 end
    parts[k] = quote(format(". %s && exec %s%s -f '%%M %%U %%S' -o %s %s >%s 2>&1",
      quote(env_file), PIN, GNU_TIME, quote(f.time), row.command(SECONDS * n), quote(f.out)))
  end
  local log = tmp .. "/slots"
  local ok = shell.run(format("%s/turns %g %s %s", opts.build, TURN_SLOT, quote(log),
                              concat(parts, " ")))
  local slots = {}
  for line in (shell.read_file(log) or ""):gmatch("[^\n]+") do
    local k, from, to = line:match("^(%d+) ([%d.]+) ([%d.]+)$")
    k = tonumber(k)
    slots[k] = slots[k] or {}
    slots[k][#slots[k] + 1] = { tonumber(from), tonumber(to) }
  end
  local tokens = token_requests() - before
  for k, row in ipairs(order) do
    local output = shell.read_file(files[k].out) or ""
    local rss, user, sys = (shell.read_file(files[k].time) or ""):match(
      "(%d+) ([%d.]+) ([%d.]+)%s*$")
    if not ok or not rss then
      fail("a row failed: " .. row.command(SECONDS * n) .. "\n" .. output)
    end
    local function ran(from, to)
      local sum = 0
      for _, s in ipairs(slots[k] or {}) do
        local a, b = math.max(s[1], from), math.min(s[2], to)
        if b > a then sum = sum + (b - a) end
      end
      return sum
    end
    record(row, output, tonumber(rss), tonumber(user) + tonumber(sys),
           row.given and 0 or (tokens == fetching and 1 or tokens), ran)
  end
end

local function load_average()
  return (shell.read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
end

---------------------------------------------------------------------------------------------
-- The sections (bench/latency.lua, ratelimit.lua, memory.lua, callgrind.lua)

local lib = dofile("bench/benchlib.lua")
local SECTION_NAMES = { "latency", "ratelimit", "memory", "callgrind" }
local ctx = {
  shell = shell, emulator = emulator, cjson = cjson, tmp = tmp, quick = QUICK, say = say,
  fail = function(message) cleanup(); fail(message) end,
  gnu_time = GNU_TIME, pin = PIN, lua = LUA, python = PYTHON, build = opts.build,
  workers = opts.workers, client_id = CLIENT_ID, user_agent = USER_AGENT, emu = emu,
  env_file = env_file, api_url = api_url, token_bytes = #token,
  node_version = shell.line("node --version 2>/dev/null"),
  -- the `order` values of this run's rows start here: the emulator remembers every value
  -- started, and a second run against it must not look like doubled starts
  order_base = os.time() * 1e4,
}

local function run_sections(names)
  local done = {}
  for _, name in ipairs(names) do
    local ok, section = pcall(dofile("bench/" .. name .. ".lua").run, ctx, lib)
    if not ok then ctx.fail("section " .. name .. ": " .. tostring(section)) end
    section.name = name
    done[#done + 1] = section
    done[name] = section
  end
  return done
end

local SECTION_TITLES = { latency = "Latency (50 ms service time)",
  ratelimit = "Rate limit", memory = "Memory, streamed", callgrind = "Instructions per start" }

local function print_sections(sections)
  for _, section in ipairs(sections) do
    print()
    print("### " .. SECTION_TITLES[section.name])
    print()
    print(section.table)
    for _, note in ipairs(section.notes or {}) do print("- " .. note) end
  end
end

-- The rate-limit chart: to opts.chart, or (QUICK, to see that it works) to the temporary
-- directory. Returns whether it was drawn, and why not.
local function draw_chart(section)
  local png = QUICK and tmp .. "/bench-ratelimit.png" or opts.chart
  local ok, why = dofile("bench/ratelimit.lua").chart(ctx, section, png)
  say("bench: chart %s", ok and (QUICK and "rendered" or "written to " .. png) or why)
  return ok, why
end

local function targets_table(list)
  local rows = {}
  for k, t in ipairs(list) do rows[k] = { t.name, t.figure, lib.check(t.holds) } end
  return lib.table({ "target", "this run", "" }, rows)
end

if opts.only then
  local names = {}
  for name in opts.only:gmatch("[^,]+") do
    if not SECTION_TITLES[name] then cleanup(); fail("unknown section " .. name) end
    names[#names + 1] = name
  end
  local sections = run_sections(names)
  local list = {}
  for _, section in ipairs(sections) do
    for _, t in ipairs(section.targets) do list[#list + 1] = t end
  end
  if sections.ratelimit then draw_chart(sections.ratelimit) end
  print_sections(sections)
  print()
  print(targets_table(list))
  cleanup()
  os.exit(0)
end

local load_before = load_average()
if tonumber(load_before:match("^%S+")) > 0.5 then
  say("bench: the machine is busy (load %s): the figures will move more than usual",
      load_before)
end
say("bench: %d round(s) of %d s per row, %d rows; emulator workers %d; load %s",
    ROUNDS, SECONDS, #ROWS, opts.workers, load_before)
local GROUPS = {}
for _, row in ipairs(ROWS) do
  if row.group then
    if not GROUPS[row.group] then
      GROUPS[row.group] = {}
      GROUPS[#GROUPS + 1] = GROUPS[row.group]
    end
    local g = GROUPS[row.group]
    g[#g + 1] = row
  end
end
for round = 1, ROUNDS do
  for k = 0, #GROUPS - 1 do                        -- which group goes first rotates too
    local group = GROUPS[(round - 1 + k) % #GROUPS + 1]
    run_group(group, round)
    for _, r in ipairs(group) do
      say("  round %d  %-46s %9.0f starts/s  (taking turns)", round, r.label,
          r.rates[#r.rates])
    end
  end
  for _, row in ipairs(ROWS) do
    if not row.group then
      run_row(row)
      say("  round %d  %-46s %9.0f starts/s", round, row.label, row.rates[#row.rates])
    end
  end
end

-- The memory row: many starts in one process, resident memory early and at the end.
local rss_row = { id = "sapwf_rss" }
do
  local before = token_requests()
  local output, peak = run_measured(format("%s bench/sapwf_row.lua rss %d", LUA, RSS_STARTS))
  local starts, seconds, failures = parse(output)
  rss_row.starts, rss_row.seconds, rss_row.failures = starts, seconds, failures
  rss_row.early = tonumber(output:match("rss_kb_early (%d+)"))
  rss_row.final = tonumber(output:match("rss_kb_end (%d+)"))
  rss_row.peak = peak
  rss_row.tokens = token_requests() - before
  if not (starts and rss_row.early and rss_row.final) then
    fail("cannot read the output of the memory row:\n" .. output)
  end
  say("  memory   %d starts: RSS %d kB after %d, %d kB at the end", starts, rss_row.early,
      RSS_STARTS / 20, rss_row.final)
end
local SECTIONS = run_sections(SECTION_NAMES)
local chart_ok, chart_why = draw_chart(SECTIONS.ratelimit)
local load_after = load_average()
local stats = emu:stats()
cleanup()

---------------------------------------------------------------------------------------------
-- Figures

-- the figures' formatting and the median are bench/benchlib.lua's, shared with the sections
local median, thousands, mib = lib.median, lib.thousands, lib.mib

local function max_of(list)
  local m
  for _, v in ipairs(list) do if not m or v > m then m = v end end
  return m
end

local function min_of(list)
  local m
  for _, v in ipairs(list) do if not m or v < m then m = v end end
  return m
end

-- The ratio of two rows, round by round (rows of one round ran within seconds of each other),
-- then the median of those.
local function ratio(a, b)
  local per_round = {}
  for i = 1, ROUNDS do per_round[i] = BY_ID[a].rates[i] / BY_ID[b].rates[i] end
  return median(per_round), min_of(per_round), max_of(per_round)
end

local function limit_for(row)
  return row.flight == 1 and "wrk1" or "wrk32"
end

local lines = {}
local function add(fmt, ...) lines[#lines + 1] = format(fmt, ...) end

add("| | in flight | starts/s | spread | x limit | CPU per start | token requests | peak RSS |")
add("|---|---:|---:|---:|---:|---:|---:|---:|")
for _, row in ipairs(ROWS) do
  local rate = median(row.rates)
  local spread = (max_of(row.rates) - min_of(row.rates)) / rate
  local x = ratio(row.id, limit_for(row))
  local tokens = row.given and "given" or format("%d", max_of(row.tokens))
  if not row.given and min_of(row.tokens) ~= max_of(row.tokens) then
    tokens = format("%d-%d", min_of(row.tokens), max_of(row.tokens))
  end
  if row.id == "py_tutorial" then tokens = "1 per start" end
  add("| %s | %d | %s | %d%% | %.2f | %d us | %s | %s |", row.label, row.flight,
      thousands(rate), math.floor(spread * 100 + 0.5), x, math.floor(median(row.cpu) * 1e6
      + 0.5), tokens, mib(max_of(row.rss)))
end
local table_text = concat(lines, "\n")

-- The targets, from this run.
local targets = {}
local function target(name, figure, holds)
  targets[#targets + 1] = { name = name, figure = figure, holds = holds }
end
do
  local r, lo, hi = ratio("sapwf_loop", "c_keepalive")
  target("`wf:start` in a loop >= 0.9 x the C keep-alive loop",
         format("%.2f (rounds %.2f-%.2f)", r, lo, hi), r >= 0.9)
  r, lo, hi = ratio("sapwf_many", "wrk32")
  target("`wf:start_many` at 32 >= 0.7 x `wrk -c32`", format("%.2f (rounds %.2f-%.2f)", r, lo, hi),
         r >= 0.7)
  r, lo, hi = ratio("sapwf_many", "py_session")
  local r2 = ratio("sapwf_loop", "py_session")
  target("sapwf >= 10 x Python requests with a Session",
         format("start_many %.1f x (rounds %.1f-%.1f); loop %.1f x", r, lo, hi, r2), r >= 10)
  local per_row = {}
  local one = true
  for _, id in ipairs({ "sapwf_loop", "sapwf_many" }) do
    local counts = {}
    for i, n in ipairs(BY_ID[id].tokens) do
      one = one and n == 1
      counts[i] = format("%d", n)
    end
    per_row[#per_row + 1] = id .. ": " .. concat(counts, ",")
  end
  one = one and rss_row.tokens == 1
  per_row[#per_row + 1] = format("memory row: %d", rss_row.tokens)
  target("exactly one token request per token lifetime in every sapwf row (each row is one "
         .. "process, well within one token's lifetime)", concat(per_row, "; "), one)
  local growth = rss_row.final - rss_row.early
  target(format("RSS grows less than 2 MiB over %s starts", thousands(RSS_STARTS)),
         format("%+d kB (%s after %s starts, %s at the end)", growth, mib(rss_row.early),
                thousands(RSS_STARTS / 20), mib(rss_row.final)), growth < 2048)
  -- the instruction counts say the same without the machine's noise: the figure shows both
  r, lo, hi = ratio("sapwf_many", "c_multi")
  local cg = SECTIONS.callgrind.by
  local floor_r, floor_lo, floor_hi = ratio("core_many", "c_multi")
  local keep_r, keep_lo, keep_hi = ratio("core_many_keep", "c_multi")
  target("`wf:start_many` at 32 >= 0.85 x the C multi loop",
         format("%.2f (rounds %.2f-%.2f), where a Lua program on sapwf.core's batch and "
                .. "plain lua-cjson reaches %.2f (rounds %.2f-%.2f), and %.2f (rounds "
                .. "%.2f-%.2f) when it keeps its answers as `start_many` returns them; by "
                .. "instructions a start %.2f, those programs %.2f and %.2f; with a %s-byte "
                .. "token %.2f (Instructions per start)", r, lo, hi, floor_r, floor_lo,
                floor_hi, keep_r, keep_lo, keep_hi,
                cg.c_multi.per_start / cg.sapwf_many.per_start,
                cg.c_multi.per_start / cg.core_many.per_start,
                cg.c_multi.per_start / cg.core_many_keep.per_start,
                thousands(SECTIONS.callgrind.token_bytes),
                cg.c_multi_long.per_start / cg.sapwf_many_long.per_start), r >= 0.85)
end
for _, section in ipairs(SECTIONS) do
  for _, t in ipairs(section.targets) do targets[#targets + 1] = t end
end

local targets_text = targets_table(targets)

print()
print(table_text)
print_sections(SECTIONS)
print()
print(targets_text)
if QUICK then
  print("\n(--quick: one short round; these figures are not the targets)")
end

---------------------------------------------------------------------------------------------
-- BENCHMARKS.md

-- --quick writes no BENCHMARKS.md, unless --out names a file: to see the layout quickly.
if not QUICK or opts.out_given then
  local function first_line(command)
    return (shell.capture(command .. " 2>&1") or ""):match("^[^\n]*") or "?"
  end
  local cpuinfo = shell.read_file("/proc/cpuinfo") or ""
  local machine = {
    format("%s CPU(s), %s", shell.line("nproc"), cpuinfo:match("model name%s*:%s*([^\n]+)")
      or "unknown CPU"),
    format("%s MiB memory", math.floor((tonumber((shell.read_file("/proc/meminfo") or "")
      :match("MemTotal:%s*(%d+)")) or 0) / 1024)),
    "Linux " .. shell.line("uname -r"),
    first_line("lsb_release -ds 2>/dev/null || cat /etc/debian_version"),
  }
  local function words(text, n)
    local out = {}
    for w in text:gmatch("%S+") do
      if #out == n then break end
      out[#out + 1] = w
    end
    return concat(out, " ")
  end
  local versions = {
    "sapwf " .. core.version .. " on " .. words(shell.line(LUA .. " -v 2>&1"), 2),
    words(core.curl_version, 2) .. (core.curl_version:match(" (nghttp2/%S+)")
      and " " .. core.curl_version:match(" (nghttp2/%S+)") or ""),
    (first_line("nginx -v"):gsub("^nginx version: ", "")),
    words(first_line("wrk -v"), 2),
    first_line(PYTHON .. " -c 'import sys, requests; print(\"Python\", sys.version.split()[0],"
      .. " \"requests\", requests.__version__)'"),
    words(first_line("curl --version"), 2),
    "Node.js " .. ctx.node_version,
    words(first_line("h2load --version"), 2),
    first_line("valgrind --version"),
    words(first_line("gnuplot --version"), 2),
  }
  local function cpu_us(id) return median(BY_ID[id].cpu) * 1e6 end
  local doc = {
    "# sapwf benchmarks",
    "",
    "Written by `make bench` (bench/run.lua); the figures are from its latest full run. Run it"
      .. " again on a quiet machine to check them: it starts and stops its own emulators;"
      .. format(" this run took %d minutes.", math.floor((os.time() - STARTED) / 60 + 0.5)),
    "",
    "## Machine",
    "",
    "- run: " .. os.date("!%Y-%m-%d %H:%M UTC") .. "; load average " .. load_before
      .. " before, " .. load_after .. " after",
    "- " .. concat(machine, "; "),
    "- " .. concat(versions, "; "),
    "",
    "## What runs",
    "",
    "Five sections: the CPU rows (starts per second with the least latency, against wrk "
      .. "and plain libcurl), latency (a tenant that takes 50 ms a start, over HTTP/2 and "
      .. "HTTP/1.1, against the server's ceiling and Node.js and Python), a rate-limited "
      .. "tenant, memory over a million streamed starts, and instructions per start.",
    "",
    format("**CPU.** Every row starts the `simple` workflow definition (`POST /v1/workflow-instances`, "
      .. "body `{\"definitionId\":\"simple\",\"context\":{\"order\":1}}`) on the same local "
      .. "emulator (nginx with its Lua module, %d worker(s), plain HTTP/1.1 on 127.0.0.1), "
      .. "with the same technical client. It has the one authority a bulk start needs "
      .. "(WORKFLOW_INSTANCE_START), so its token is %d bytes. wrk and the C programs send "
      .. "sapwf's request, header for header (its User-Agent `%s` included): libcurl spends "
      .. "about 100 instructions on each header byte, so a header only some rows sent would "
      .. "tilt the comparison.", opts.workers, #token, USER_AGENT),
    "",
    format("Each row is a process of its own that starts instances for about %d s of its "
      .. "own, %d times (rounds). The rows with one start in flight run at once, and so do "
      .. "the rows with 32, but they take turns (bench/turns.c): each runs in slots of %d ms, "
      .. "round robin, while the others of its group are stopped (SIGSTOP), so whatever else "
      .. "the virtual machine does falls on all of them alike; each round another row goes "
      .. "first. Run one after the other, the same program moves by 20%% from one second to "
      .. "the next here, more than the differences the targets are about. A row's rate "
      .. "counts only the time it really ran. The rows of what users do today (Python, "
      .. "the curl command line) run on their own, one after the other: their target is "
      .. "coarse, and they are heavy neighbours. In an earlier run (2026-11-24) with "
      .. "Python's Session row in the same rotation, every Lua row lost about 9%% against the "
      .. "C loop (`wf:start`: median 0.82 over five rounds instead of 0.90 over seven): the "
      .. "first target depends on what else shares the machine.",
      SECONDS, ROUNDS, math.floor(TURN_SLOT * 1000 + 0.5)),
    "",
    "The table shows each row's median over the rounds (spread: (max - min) / median). "
      .. "\"x limit\" divides by `wrk` with as many requests in flight (1 or 32), round by "
      .. "round. Peak RSS is the row process's maximum resident memory (GNU time); token "
      .. "requests are what the emulator counted during the row (\"given\": the row was "
      .. "handed a token). CPU per start is the row process's user and system time (with its "
      .. "children's) over its starts: what the client spends, apart from the server.",
    "",
    "- the limit: `wrk` (one thread) with bench/start.lua;",
    "- the floor for any libcurl client: bench/keepalive.c (one easy handle, one kept-alive "
      .. "connection) and bench/multi.c (32 easy handles on a multi handle);",
    "- sapwf: `wf:start` in a loop, and `wf:start_many` over 2,000 items a call with "
      .. "concurrency 32 (bench/sapwf_row.lua);",
    "- where sapwf's time goes: its C core's `client:request` alone (a fixed body, the "
      .. "answer not read), and the same with the context encoded and the answer decoded by "
      .. "plain lua-cjson, the least a Lua program on libcurl and lua-cjson does per start; "
      .. "and that Lua program with 32 in flight on sapwf.core's batch (libcurl's multi "
      .. "interface), the least for `start_many`'s work; and the same program keeping each "
      .. "decoded answer in a list of 2,000 (a fresh one for the next 2,000), as the "
      .. "`start_many` row's calls return theirs, the least for `start_many`'s work with its "
      .. "results;",
    "- what users do today: Python `requests` with a Session (bench/requests_session.py), "
      .. "the tutorial's new token per start (bench/requests_tutorial.py), and one `curl` "
      .. "command per start (bench/curl_loop.sh).",
    "",
  }
  for _, section in ipairs(SECTIONS) do
    for _, paragraph in ipairs(section.what) do
      doc[#doc + 1] = paragraph
      doc[#doc + 1] = ""
    end
  end
  local cg_by = SECTIONS.callgrind.by
  local rest = {
    "## Results",
    "",
    "### CPU",
    "",
    table_text,
    "",
  }
  for _, line in ipairs(rest) do doc[#doc + 1] = line end
  for _, section in ipairs(SECTIONS) do
    doc[#doc + 1] = "### " .. SECTION_TITLES[section.name]
    doc[#doc + 1] = ""
    doc[#doc + 1] = section.table
    doc[#doc + 1] = ""
    if section.name == "ratelimit" and chart_ok then
      doc[#doc + 1] = format("![Goodput and the concurrency limit over time under a rate "
        .. "limit](%s)", opts.chart)
      doc[#doc + 1] = ""
    end
    for _, note in ipairs(section.notes or {}) do
      doc[#doc + 1] = "- " .. note
    end
    if section.notes then doc[#doc + 1] = "" end
  end
  rest = {
    "## Targets",
    "",
    targets_text,
    "",
    format("Memory: one process made %s starts (half `wf:start`, half `wf:start_many`, in "
      .. "rounds of 1,000 each, the Lua GC running normally): resident memory %s after %s "
      .. "starts, %s at the end, peak %s. Token requests: %d. The emulator keeps at most "
      .. "20,000 instances per worker (over the whole run it dropped %s).",
      thousands(rss_row.starts),
      mib(rss_row.early), thousands(RSS_STARTS / 20), mib(rss_row.final), mib(rss_row.peak),
      rss_row.tokens, thousands(stats.instances_evicted or 0)),
    "",
    "## Notes",
    "",
    "- One machine runs both sides: the client rows compete with nginx for its CPUs, so a "
      .. "client that needs less CPU per start leaves more to the server. wrk needs the "
      .. "least, which is why it is the limit.",
    format("- Where the loop's time goes, against the C keep-alive loop: "
      .. "sapwf.core's `client:request` alone %.2f x, with plain lua-cjson both ways %.2f x, "
      .. "`wf:start` %.2f x. The middle row is the least any Lua program on libcurl and "
      .. "lua-cjson does per start (no sapwf Lua code at all).",
      (ratio("core_loop", "c_keepalive")), (ratio("core_json", "c_keepalive")),
      (ratio("sapwf_loop", "c_keepalive"))),
    format("- Where `start_many`'s time goes, against the C multi loop: the Lua program on "
      .. "sapwf.core's batch with plain lua-cjson both ways %.2f x, the same keeping its "
      .. "answers %.2f x, `wf:start_many` %.2f x. By instructions a start (Instructions per "
      .. "start), that program adds %s to the C loop, %s of them for decoding each answer "
      .. "into a table (the C loop drops the answers); keeping the answers, as `start_many` "
      .. "must return them, adds %s (the collector marks every kept table again in each of "
      .. "its cycles), and sapwf's Lua layer adds %s more: the scheduler, a coroutine per "
      .. "slot, the checks and the rules of each call. That program runs at %.2f x "
      .. "`wrk -c32`, the limit: the nearer it is to 1, the more the server, not the client, "
      .. "sets the pace, so its ratio on the wall clock is above its ratio by instructions.",
      (ratio("core_many", "c_multi")), (ratio("core_many_keep", "c_multi")),
      (ratio("sapwf_many", "c_multi")),
      thousands(cg_by.core_many.per_start - cg_by.c_multi.per_start),
      thousands(cg_by.core_many.per_start - cg_by.core_many_drop.per_start),
      thousands(cg_by.core_many_keep.per_start - cg_by.core_many.per_start),
      thousands(cg_by.sapwf_many.per_start - cg_by.core_many_keep.per_start),
      (ratio("core_many", "wrk32"))),
    format("- On LuaJIT, OpenResty's interpreter, `wf:start_many` runs at %.2f x the C multi "
      .. "loop (on Lua 5.4 %.2f x). Its answers' header blocks are userdata, not strings: "
      .. "LuaJIT interns every string, hashing a long one from a few of its bytes, and header "
      .. "blocks differ only in the Date and the request id, so as strings each went down one "
      .. "hash chain of its look-alikes, compared whole (0.38-0.47 x before).",
      (ratio("sapwf_many_jit", "c_multi")), (ratio("sapwf_many", "c_multi"))),
    format("- What sapwf adds to plain libcurl, in CPU per start: %d us in the loop (%d us "
      .. "against the C loop's %d us) and %d us in `start_many` (%d us against the C multi "
      .. "loop's %d us): the JSON both ways, judging the answer (errors, retries) and the "
      .. "batch's scheduling. The C floor itself reaches %.2f x `wrk -c1` and %.2f x "
      .. "`wrk -c32` here.",
      math.floor(cpu_us("sapwf_loop") - cpu_us("c_keepalive") + 0.5),
      math.floor(cpu_us("sapwf_loop") + 0.5), math.floor(cpu_us("c_keepalive") + 0.5),
      math.floor(cpu_us("sapwf_many") - cpu_us("c_multi") + 0.5),
      math.floor(cpu_us("sapwf_many") + 0.5), math.floor(cpu_us("c_multi") + 0.5),
      (ratio("c_keepalive", "wrk1")), (ratio("c_multi", "wrk32"))),
    "- libcurl 7.88 formats each request header through its own printf, byte by byte "
      .. "(about 12 ns a byte here): the Bearer token dominates what a libcurl client spends "
      .. "per request, so the C floor and sapwf pay for it alike and wrk does not. A token "
      .. "with every Workflow authority is about 5 KB, five times this one.",
    "- Figures on a shared or virtual machine move from run to run; compare rows of one run, "
      .. "not runs.",
    "",
  }
  for _, line in ipairs(rest) do doc[#doc + 1] = line end
  shell.write_file(opts.out, concat(doc, "\n"))
  say("bench: wrote %s", opts.out)
end
