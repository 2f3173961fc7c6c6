-- The tenant's limits, and what they count. A real tenant answers after some time, refuses
-- beyond its usage limit (429, SAP's "usage limit of the tenant"), and is reached over
-- connections that cost a TLS handshake; benchmarks and specs need all of it visible.
--
-- The limits (PUT /_emulator/limits; none by default) live in the shared configuration as
-- config.limits, so the hot path without limits costs one table lookup:
--   service_time   seconds an API request takes, from its arrival to its answer
--   jitter         a uniformly random extra 0..jitter seconds per request
--   rate, burst    a token bucket over every API request of the tenant (all workers):
--                  `rate` tokens a second, at most `burst` (default: rate) kept
--   count_key      a context field naming the item of a bulk start: starts_keyed counts
--                  the first start of each value, starts_doubled the later ones
--   keep_instances false: starts answer 201 as usual but keep nothing (memory stays flat)
-- Only API requests are limited: not the token endpoint, not the control API.
--
-- Shared dict keys (sapwf_emulator): "c:<name>" counters (shared.lua zeroes them on reset),
-- "l:in_flight" (not zeroed: requests in flight outlive a reset), "l:tokens"/"l:at" the
-- bucket, "l:lock" its lock, "h:<n>" the in-flight high-water ladder. The values of
-- count_key go to their own dict, sapwf_emulator_keys, sized by the launcher's key_memory.
local shared = require "sapwf.emulator.server.shared"
local respond = require "sapwf.emulator.server.respond"
local store = require "sapwf.emulator.server.store"
local json = require "sapwf.emulator.server.json"

local ngx = ngx
local dict = ngx.shared.sapwf_emulator
local keys = ngx.shared.sapwf_emulator_keys
local type, pairs, ipairs, tostring, tonumber, next =
  type, pairs, ipairs, tostring, tonumber, next
local random, ceil, min, max = math.random, math.ceil, math.min, math.max
local sub = string.sub
local count, count_in = shared.count, shared.count_in
local worker_id = ngx.worker.id

local limits = {}

-- The counters stats() always shows (0 until something happened).
local COUNTERS = { "connections", "tls_handshakes", "tls_resumed", "http2_requests",
  "rate_limited", "in_flight_max", "starts_keyed", "starts_doubled", "starts_unkeyed" }

local FIELDS = { service_time = "number", jitter = "number", rate = "number",
  burst = "number", count_key = "string", keep_instances = "boolean", retry_after = "boolean" }
local FIELD_LIST = "service_time, jitter, rate, burst, count_key, keep_instances, retry_after"

---------------------------------------------------------------------------------------------
-- Setting them

--- The limits for a control request body: a table (nil when none is set), or nil and a
-- message. Every field is optional; a body without any removes them all.
function limits.check(spec)
  if not json.is_object(spec) then return nil, "the limits must be a JSON object" end
  for name, value in pairs(spec) do
    local expected = FIELDS[name]
    if not expected then
      return nil, "unknown limit '" .. tostring(name) .. "' (known: " .. FIELD_LIST .. ")"
    end
    if type(value) ~= expected then
      return nil, "limit '" .. name .. "' must be a " .. expected
    end
  end
  for _, name in ipairs({ "service_time", "jitter" }) do
    local value = spec[name]
    if value and (value < 0 or value > 3600 or value ~= value) then
      return nil, "limit '" .. name .. "' must be from 0 to 3600 seconds"
    end
  end
  if spec.rate and not (spec.rate > 0 and spec.rate < 1e9) then
    return nil, "limit 'rate' must be a positive number of requests a second"
  end
  if spec.burst then
    if not spec.rate then return nil, "limit 'burst' needs a rate" end
    if not (spec.burst >= 1 and spec.burst < 1e9) then
      return nil, "limit 'burst' must be at least 1 (a token)"
    end
  end
  if spec.count_key == "" then return nil, "limit 'count_key' must not be empty" end
  if next(spec) == nil then return nil end
  local current = limits.view(spec)
  current.burst = spec.rate and (spec.burst or spec.rate)
  return current
end

--- What GET and PUT /_emulator/limits answer: the limits in force, defaults filled in.
function limits.view(current)
  current = current or {}
  return { service_time = current.service_time or 0, jitter = current.jitter or 0,
    rate = current.rate, burst = current.burst, count_key = current.count_key,
    keep_instances = current.keep_instances ~= false,
    retry_after = current.retry_after ~= false }
end

--- Called when the limits change and on reset: the bucket starts full again.
function limits.refill()
  dict:delete("l:tokens")
  dict:delete("l:at")
end

---------------------------------------------------------------------------------------------
-- The token bucket

-- The take must be exact across workers: read the tokens, refill them for the time passed,
-- take one, write back. The shared dict has no compare-and-set, and a "theoretical arrival
-- time" kept with dict:incr alone cannot be clamped up to now atomically (two workers after
-- an idle spell would both add the catch-up), so the take runs under a lock. The lock is
-- dict:add of a key with a short expiry, the primitive lua-resty-lock uses (that library
-- is no Debian package, the emulator needs only nginx and its Lua module). The critical
-- section never yields, so it is held for microseconds, and only another worker can find
-- it taken; the expiry frees it should a worker die holding it.
local LOCK, LOCK_EXPIRY = "l:lock", 1

local function lock()
  while not dict:add(LOCK, true, LOCK_EXPIRY) do ngx.sleep(0.001) end
end

-- Takes a token. nil when one was there, else the seconds until one will be.
local function take(rate, burst)
  lock()
  ngx.update_time()                     -- under the lock: times in the order of the takes
  local now = ngx.now()
  local tokens, at = dict:get("l:tokens"), dict:get("l:at")
  if not tokens then
    tokens, at = burst, now
  elseif now > at then
    tokens = min(burst, tokens + (now - at) * rate)
  else
    now = at                            -- a clock step back: no refill, and never backwards
  end
  local wait
  if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
  dict:set("l:tokens", tokens)
  dict:set("l:at", now)
  dict:delete(LOCK)
  return wait
end

--- On an API request's arrival, before anything else: the arrival time (for serve), or nil
-- when it was refused (429, sent at once: a refusal costs the tenant nothing, so no service
-- time). The time is read now, not taken from ngx.req.start_time(): that is nginx's cached
-- time of the event loop turn, which can be a little older than the request.
function limits.admit(current)
  ngx.update_time()
  local arrived = ngx.now()
  local rate = current.rate
  if not rate then return arrived end
  local wait = take(rate, current.burst)
  if not wait then return arrived end
  count("rate_limited")
  shared.count_in("api_responses_by_status", 429)
  -- [inferred] SAP's API definition names no Retry-After for its 429; gateways in front of
  -- BTP send one in whole seconds, and clients (sapwf's send.lua) honour it. retry_after =
  -- false answers as the definition shows, so clients are tested without it too.
  respond.send(429, respond.RATE_LIMITED, current.retry_after ~= false
    and { ["Retry-After"] = tostring(max(1, ceil(wait))) } or nil)
  return nil
end

---------------------------------------------------------------------------------------------
-- Service time

--- Before the answer is sent: waits out what is left of the service time (plus jitter),
-- counted from `arrived` (admit's time). ngx.sleep yields, so one worker holds any number
-- of requests meanwhile.
function limits.serve(current, arrived)
  local total = current.service_time
  if current.jitter > 0 then total = total + random() * current.jitter end
  if total <= 0 then return end
  local due = arrived + total
  while true do
    ngx.update_time()
    local left = due - ngx.now()
    if left <= 0 then return end
    ngx.sleep(left)                     -- timers are in milliseconds: may wake a bit early
  end
end

---------------------------------------------------------------------------------------------
-- What is counted

--- Every request but the control API's, on the http and https listeners: connections (a
-- connection's first request; nginx numbers HTTP/2 streams per connection the same way),
-- and which worker took each (connections_by_worker, by ngx.worker.id: a spec of many
-- workers can see that they all served), TLS handshakes and resumptions (once per
-- connection), HTTP/2 requests.
function limits.arrived(listener)
  local var = ngx.var
  if var.connection_requests == "1" then
    count("connections")
    count_in("connections_by_worker", worker_id())
    if listener == "https" then
      count(var.ssl_session_reused == "r" and "tls_resumed" or "tls_handshakes")
    end
  end
  if listener == "https" and var.server_protocol == "HTTP/2.0" then count("http2_requests") end
end

--- An API request begins: in_flight up, and in_flight_max follows it. The ladder: in_flight
-- moves in steps of one, so reaching n means some increment returned each of 1..n; the
-- first to add "h:<k>" for a k counts in_flight_max up by one. Exact across workers with
-- no lock, and at most one add a request (none below the known maximum).
function limits.enter()
  local n = dict:incr("l:in_flight", 1, 0)
  ngx.ctx.sapwf_in_flight = true
  if n > (dict:get("c:in_flight_max") or 0) and dict:add("h:" .. n, true) then
    count("in_flight_max")
  end
end

--- log_by_lua of every request: the API request that entered has ended (however: answered,
-- dropped by a fault, failed).
function limits.leave()
  if ngx.ctx.sapwf_in_flight then dict:incr("l:in_flight", -1, 0) end
end

--- A start answered 201: counts the value of count_key in its context, and lets the instance
-- go when instances are not kept.
function limits.started(current, context, instance)
  local name = current.count_key
  local value = name and context[name]
  if value ~= nil then
    -- the type first: the string "1" and the number 1 are different items
    local key = type(value) == "string" and "s" .. value or "j" .. (json.encode(value) or "")
    -- safe_add: a full dict refuses ("no memory") instead of evicting older values, which
    -- would count their next start as a first one
    local ok, err = keys:safe_add(key, true)
    if ok then
      count("starts_keyed")
    elseif err == "exists" then
      count("starts_doubled")
    else
      count("starts_unkeyed")
    end
  end
  if not current.keep_instances then store.remove_instance(instance) end
end

--- Adds the counters of this module to a stats answer.
function limits.stats(result)
  for _, name in ipairs(COUNTERS) do result[name] = result[name] or 0 end
  result.connections_by_worker = result.connections_by_worker or {}
  result.in_flight = dict:get("l:in_flight") or 0
  return result
end

--- On reset (after shared.reset_counters): the keys seen go, and the bucket is full again.
-- in_flight stays: those requests are still being served. So in_flight_max starts from
-- them, and the ladder keeps its rungs up to them (enter counts one per rung: had they
-- gone, a request beyond them would count one, not their number plus one).
function limits.reset()
  local in_flight = dict:get("l:in_flight") or 0
  for _, key in ipairs(dict:get_keys(0)) do
    if sub(key, 1, 2) == "h:" and tonumber(sub(key, 3)) > in_flight then dict:delete(key) end
  end
  if in_flight > 0 then dict:set("c:in_flight_max", in_flight) end
  keys:flush_all()
  keys:flush_expired()                  -- flush_all only marks: free the memory now
  limits.refill()
end

return limits
