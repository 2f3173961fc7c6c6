-- The sapwf rows of `make bench`, each in a process of its own (so each has its own client,
-- token and peak RSS), started by bench/run.lua:
--
--   sapwf_row.lua loop SECONDS          wf:start in a loop
--   sapwf_row.lua core SECONDS          the same start through sapwf.core's client:request
--                                       alone: no Lua layer, no JSON
--   sapwf_row.lua core_json SECONDS     client:request with the context encoded and the
--                                       answer decoded by plain lua-cjson: the least any Lua
--                                       program on libcurl and lua-cjson does per start
--   sapwf_row.lua many SECONDS N        wf:start_many with concurrency N, 2000 items a call
--   sapwf_row.lua core_many SECONDS N   starts on a sapwf.core batch of N slots, each
--                                       context encoded and answer decoded by plain
--                                       lua-cjson: the least any Lua program on libcurl's
--                                       multi interface and lua-cjson does per start
--   sapwf_row.lua rss TOTAL             TOTAL starts, half wf:start and half start_many, in
--                                       rounds of 1000 each: resident memory as it goes
--   sapwf_row.lua loop_n N              N starts with wf:start, one after the other
--   sapwf_row.lua many_n N C            one wf:start_many over N items, concurrency C
--   sapwf_row.lua core_many_keep SECONDS N
--                                       core_many, each decoded answer kept in a list of
--                                       2000, a fresh list for the next 2000, as many's
--                                       start_many calls return theirs: the least for
--                                       start_many's work, results and all
--   sapwf_row.lua core_many_n N C       N starts as core_many's, on C slots
--   sapwf_row.lua core_many_keep_n N C  N starts as core_many_keep's, on C slots
--   sapwf_row.lua core_many_drop_n N C  the same, each answer's body checked for length
--                                       only, not decoded: dropped, as the C loop does
--                                       (the first one decoded, for the size and fields
--                                       it reports: answer_bytes N answer_fields N)
--   sapwf_row.lua stream N C            wf:start_each over N items made as it asks for them
--                                       (context {order = $SAPWF_BENCH_ORDER_BASE + i}),
--                                       concurrency C: nothing of an item is kept
--
-- The fixed counts are for the rows that compare runs of N and 2N starts (instructions,
-- bench/callgrind.lua), or that size the work to the time it should take (bench/latency.lua,
-- where one call over enough items keeps the concurrency up until the end, unlike calls over
-- chunks that each drain before the next), or to the memory it must not take
-- (bench/memory.lua).
--
-- The service key comes from $SAPWF_BENCH_KEY (JSON), the CA of an https emulator from
-- $SAPWF_BENCH_CA_FILE. Prints one line for run.lua:
--   starts N seconds S failures N ended T [rss_kb_early N rss_kb_end N]
-- (ended: when the measurement ended, CLOCK_MONOTONIC, as bench/turns.c logs its slots)
local sapwf = require "sapwf"
local core = require "sapwf.core"
local cjson = require "cjson"

local mode, arg2, arg3 = arg[1], tonumber(arg[2]), tonumber(arg[3])
local wf = assert(sapwf.new{ service_key = cjson.decode(assert(os.getenv("SAPWF_BENCH_KEY"))),
                              cafile = os.getenv("SAPWF_BENCH_CA_FILE") })
local now = core.monotonic
local context = { order = 1 }
local CHUNK = 2000

-- VmRSS of this process in kB, from the kernel.
local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

local function report(starts, failures, seconds, extra)
  io.write(string.format("starts %d seconds %.3f failures %d ended %.6f%s\n", starts, seconds,
                         failures, now(), extra or ""))
end

local function loop(n)
  local ok = 0
  for _ = 1, n do
    if wf:start("simple", context) then ok = ok + 1 end
  end
  return ok, n - ok
end

local items = {}
for i = 1, CHUNK do items[i] = { definitionId = "simple", context = context } end

local function many(n, concurrency)
  local list = items
  if n < CHUNK then
    list = {}
    for i = 1, n do list[i] = items[i] end
  end
  local ok = 0
  for _, r in ipairs(wf:start_many(list, { concurrency = concurrency })) do
    if not sapwf.is_error(r) then ok = ok + 1 end
  end
  return ok, n - ok
end

assert(wf:token())                               -- the one token, before the clock starts

-- One start of each one-at-a-time row; true when the instance was started. The core rows
-- use the client's own sapwf.core client (its token, its connection) without the Lua layer.
local BODY = '{"definitionId":"simple","context":{"order":1}}'
local plain_encode, plain_decode = cjson.encode, cjson.decode
local STEPS = {
  loop = function() return wf:start("simple", context) ~= nil end,
  core = function() return wf._core:request("POST", "/v1/workflow-instances", BODY) == 201 end,
  core_json = function()
    local body = '{"definitionId":"simple","context":' .. plain_encode(context) .. '}'
    local status, answer = wf._core:request("POST", "/v1/workflow-instances", body)
    return status == 201 and type(plain_decode(answer)) == "table"
  end,
}

local CORE_MANY = { core_many = true, core_many_keep = true, core_many_n = true,
                    core_many_keep_n = true, core_many_drop_n = true }

if STEPS[mode] then                              -- the clock read after each start, as in C
  local seconds = assert(arg2, "seconds expected")
  local starts, failures = 0, 0
  local t0 = now()
  repeat
    if STEPS[mode]() then starts = starts + 1 else failures = failures + 1 end
  until now() - t0 >= seconds
  report(starts, failures, now() - t0)
elseif mode == "many" then
  local seconds = assert(arg2, "seconds expected")
  local starts, failures = 0, 0
  local t0 = now()
  repeat
    local ok, bad = many(CHUNK, arg3 or 32)
    starts, failures = starts + ok, failures + bad
  until now() - t0 >= seconds
  report(starts, failures, now() - t0)
elseif mode == "rss" then
  local total = assert(arg2, "total expected")
  local early_at = total / 20                    -- 10,000 of 200,000
  local starts, failures, early = 0, 0, nil
  local t0 = now()
  while starts + failures < total do
    local ok, bad = loop(1000)
    local ok2, bad2 = many(1000, 32)
    starts, failures = starts + ok + ok2, failures + bad + bad2
    if not early and starts + failures >= early_at then early = rss_kb() end
  end
  report(starts, failures, now() - t0,
         string.format(" rss_kb_early %d rss_kb_end %d", early, rss_kb()))
elseif CORE_MANY[mode] then
  -- the same loop for a time (core_many, core_many_keep) or a count (the _n modes), the
  -- clock read after each answer as in C
  local limit, size = assert(arg2, "seconds or count expected"), arg3 or 32
  local counting, drop = mode:match("_n$") ~= nil, mode == "core_many_drop_n"
  local keep, kept, held = mode:match("^core_many_keep") ~= nil, {}, 0
  local b = wf._core:batch(size)
  local sent, ok, bad, first = 0, 0, 0, nil
  local function submit(k)
    sent = sent + 1
    b:submit(k, "POST", "/v1/workflow-instances",
             '{"definitionId":"simple","context":' .. plain_encode(context) .. '}')
  end
  local t0 = now()
  local function more()
    if counting then return sent < limit end
    return now() - t0 < limit
  end
  for k = 1, counting and math.min(size, limit) or size do submit(k) end
  while ok + bad < sent do
    local k, status, answer = b:wait()
    first = first or answer
    local value = not drop and plain_decode(answer)
    if keep then
      if held == CHUNK then kept, held = {}, 0 end
      held = held + 1
      kept[held] = value
    end
    if status == 201 and (drop and #answer > 0 or type(value) == "table") then
      ok = ok + 1
    else bad = bad + 1 end
    if more() then submit(k) end
  end
  b:close()
  local fields = 0
  for _ in pairs(drop and plain_decode(first) or {}) do fields = fields + 1 end
  report(ok, bad, now() - t0, drop and string.format(" answer_bytes %d answer_fields %d",
                                                     #first, fields))
elseif mode == "loop_n" then
  local n = assert(arg2, "count expected")
  local t0 = now()
  local starts, failures = loop(n)
  report(starts, failures, now() - t0)
elseif mode == "many_n" then
  local n = assert(arg2, "count expected")
  local list = {}
  for i = 1, n do list[i] = { definitionId = "simple", context = context } end
  local t0 = now()
  local ok = 0
  for _, r in ipairs(wf:start_many(list, { concurrency = arg3 or 32 })) do
    if not sapwf.is_error(r) then ok = ok + 1 end
  end
  report(ok, n - ok, now() - t0)
elseif mode == "stream" then
  local n = assert(arg2, "count expected")
  local base = tonumber(os.getenv("SAPWF_BENCH_ORDER_BASE")) or 0
  local made, starts, failures, handed = 0, 0, 0, 0
  local t0 = now()
  wf:start_each(function()
    if made == n then return nil end
    made = made + 1
    return { definitionId = "simple", context = { order = base + made } }
  end, function(_, result)
    handed = handed + 1
    if sapwf.is_error(result) then failures = failures + 1 else starts = starts + 1 end
  end, { concurrency = arg3 or 32 })
  report(starts, failures, now() - t0, string.format(" handed %d rss_kb_end %d", handed,
                                                     rss_kb()))
else
  error("usage: sapwf_row.lua loop|core|core_json|many|core_many|core_many_keep|rss|loop_n|"
        .. "many_n|core_many_n|core_many_keep_n|core_many_drop_n|stream ...")
end
wf:close()
