-- One client process of the rate-limit rows (bench/ratelimit.lua): wf:start_each streams
-- starts at a tenant that refuses beyond its rate, for SECONDS, then stops asking for items
-- and lets the starts in flight end.
--
--   ratelimit_row.lua SECONDS CONCURRENCY ADAPTIVE(1|0) BASE STRIDE SERIES_FILE
--
-- Item i has context {order = BASE + i * STRIDE}: the processes of one row get BASE = the
-- row's offset + their number and STRIDE = their count, so no two items of a row share a
-- value and the emulator's starts_keyed / starts_doubled tell lost and doubled starts.
-- SERIES_FILE gets one line per 100 ms from the first start: "t starts concurrency" (the
-- 201s whose answers came in those 100 ms, and the batch's concurrency limit at its end,
-- from the log events of wf:start_each's limiter).
--
-- Prints one line: starts N window_starts N seconds S failures N items N handed N
-- refused N ended T (starts: items answered 201; window_starts: those within SECONDS;
-- refused: 429s the client saw, from its log; failures: items handed an error; handed:
-- items handed a result at all).
local sapwf = require "sapwf"
local core = require "sapwf.core"
local cjson = require "cjson"

local seconds, concurrency, adaptive = tonumber(arg[1]), tonumber(arg[2]), arg[3] == "1"
local base, stride, series_file = tonumber(arg[4]), tonumber(arg[5]), arg[6]
assert(seconds and concurrency and base and stride and series_file,
       "usage: ratelimit_row.lua SECONDS CONCURRENCY ADAPTIVE BASE STRIDE SERIES_FILE")

local now = core.monotonic
local STEP = 0.1
local t0
-- concurrency limit changes: times and values, from the log hook; refusals seen
local change_at, change_to, refused = {}, {}, 0

local function on_log(event)
  if event.event == "concurrency" then
    change_at[#change_at + 1] = t0 and now() - t0 or 0
    change_to[#change_to + 1] = event.concurrency
  elseif event.event == "rate_limited" then
    refused = refused + 1
  elseif event.event == "retry" and event.status == 429 then
    refused = refused + 1                       -- not adaptive: a 429 is retried as usual
  end
end

local wf = assert(sapwf.new{ service_key = cjson.decode(assert(os.getenv("SAPWF_BENCH_KEY"))),
                              cafile = os.getenv("SAPWF_BENCH_CA_FILE"), log = on_log })
assert(wf:token())                               -- the token, before the clock starts

local buckets = {}                               -- 201s per STEP, from t0
local made, starts, window_starts, failures, handed = 0, 0, 0, 0, 0
t0 = now()
wf:start_each(function()
  if now() - t0 >= seconds then return nil end
  local i = made
  made = made + 1
  return { definitionId = "simple", context = { order = base + i * stride } }
end, function(_, result)
  handed = handed + 1
  if sapwf.is_error(result) then
    failures = failures + 1
    if result.status == 429 then refused = refused + 1 end
    return
  end
  starts = starts + 1
  local t = now() - t0
  if t < seconds then window_starts = window_starts + 1 end
  local k = math.floor(t / STEP) + 1
  buckets[k] = (buckets[k] or 0) + 1
end, { concurrency = concurrency, adaptive = adaptive })
local ended = now()

-- The series: the concurrency limit at each step's end (the ceiling until the first change).
local out = assert(io.open(series_file, "w"))
local last, c, j = math.floor((ended - t0) / STEP) + 1, concurrency, 1
for k = 1, last do
  while change_at[j] and change_at[j] <= k * STEP do
    c = change_to[j]
    j = j + 1
  end
  out:write(string.format("%.1f %d %d\n", (k - 1) * STEP, buckets[k] or 0, c))
end
out:close()
io.write(string.format("starts %d window_starts %d seconds %.3f failures %d items %d handed %d "
  .. "refused %d ended %.6f\n", starts, window_starts, ended - t0, failures, made, handed,
  refused, ended))
wf:close()
