-- The sapwf rows of `make bench`, each in a process of its own (so each has its own client,
-- token and peak RSS), started by bench/run.lua:
--
--   sapwf_row.lua loop SECONDS          wf:start in a loop
--   sapwf_row.lua many SECONDS N        wf:start_many with concurrency N, 2000 items a call
--   sapwf_row.lua rss TOTAL             TOTAL starts, half wf:start and half start_many, in
--                                       rounds of 1000 each: resident memory as it goes
--
-- The service key comes from $SAPWF_BENCH_KEY (JSON). Prints one line for run.lua:
--   starts N seconds S failures N [rss_kb_early N rss_kb_end N]
local sapwf = require "sapwf"
local core = require "sapwf.core"
local cjson = require "cjson"

local mode, arg2, arg3 = arg[1], tonumber(arg[2]), tonumber(arg[3])
local wf = assert(sapwf.new{ service_key = cjson.decode(assert(os.getenv("SAPWF_BENCH_KEY"))) })
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
  io.write(string.format("starts %d seconds %.3f failures %d%s\n", starts, seconds, failures,
                         extra or ""))
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

if mode == "loop" or mode == "many" then
  local seconds = assert(arg2, "seconds expected")
  local starts, failures = 0, 0
  local t0 = now()
  repeat
    local ok, bad
    if mode == "loop" then ok, bad = loop(200) else ok, bad = many(CHUNK, arg3 or 32) end
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
else
  error("usage: sapwf_row.lua loop|many|rss ...")
end
wf:close()
