-- What every nginx worker must agree on lives in the shared dict `sapwf_emulator`:
--   * the counters (exact across workers: they are atomic increments);
--   * the configuration changed through the control API (clients, faults, the token
--     generation, the data generation), as one JSON document plus a version number. Each
--     worker re-reads it when the version moved, so the hot path costs one dict:get.
-- The workflow data itself (instances, tasks, ...) is a per-worker Lua table (store.lua).
local cjson = require "cjson.safe"

local dict = ngx.shared.sapwf_emulator
local ipairs = ipairs
local sub, find = string.sub, string.find

local shared = {}

local seen_version, config
local watchers = {}

-- The scalar counters stats() always reports, even while they are 0.
local COUNTERS = {
  "token_requests", "tokens_issued", "api_requests", "instances_started", "messages",
  "tasks_completed", "faults_applied", "instances_evicted", "token_requests_with_api_key",
}
-- The counters that are maps: name -> key -> count.
local MAPS = {
  "token_requests_by_client", "api_requests_by_operation", "api_responses_by_status",
  "token_responses_by_status",
}

--- Called once in the nginx master (init_by_lua): the configuration every worker starts with.
function shared.init(initial)
  dict:flush_all()
  dict:set("config", assert(cjson.encode(initial)))
  dict:set("version", 1)
end

--- fn(config, previous) runs in a worker each time it sees a new configuration.
function shared.watch(fn)
  watchers[#watchers + 1] = fn
end

--- The current configuration (decoded once per version and worker).
function shared.config()
  local version = dict:get("version")
  if version ~= seen_version then
    local previous = config
    config = assert(cjson.decode(dict:get("config")))
    seen_version = version
    for _, fn in ipairs(watchers) do fn(config, previous) end
  end
  return config
end

--- Changes the configuration for every worker: fn(config) edits a fresh copy in place.
-- Control calls come one at a time from a test, so there is no lock.
function shared.update(fn)
  local copy = assert(cjson.decode(dict:get("config")))
  local result = fn(copy)
  dict:set("config", assert(cjson.encode(copy)))
  dict:incr("version", 1)
  shared.config()
  return result
end

-- The dict keys of counters, made once (building them per request is measurable).
local counter_keys = {}
local map_keys = {}

function shared.count(name)
  local key = counter_keys[name]
  if not key then
    key = "c:" .. name
    counter_keys[name] = key
  end
  dict:incr(key, 1, 0)
end

--- Counts key (a string or a number) in the map counter `map`.
function shared.count_in(map, key)
  local keys = map_keys[map]
  if not keys then
    keys = {}
    map_keys[map] = keys
  end
  local full = keys[key]
  if not full then
    full = "m:" .. map .. "\0" .. key
    keys[key] = full
  end
  dict:incr(full, 1, 0)
end

--- Uses the fault `id` once if it has been used fewer than `times` times (-1: no limit).
function shared.use_fault(id, times)
  local key = "f:" .. id
  local uses = dict:incr(key, 1, 0)
  if times >= 0 and uses > times then
    dict:incr(key, -1)          -- used up: take the attempt back, so uses stays exact
    return false
  end
  return true
end

function shared.fault_uses(id)
  return dict:get("f:" .. id) or 0
end

function shared.stats()
  local stats = {}
  for _, name in ipairs(COUNTERS) do stats[name] = 0 end
  for _, name in ipairs(MAPS) do stats[name] = {} end
  for _, key in ipairs(dict:get_keys(0)) do
    local kind = sub(key, 1, 2)
    if kind == "c:" then
      stats[sub(key, 3)] = dict:get(key)
    elseif kind == "m:" then
      local nul = find(key, "\0", 3, true)
      local map = sub(key, 3, nul - 1)
      stats[map] = stats[map] or {}
      stats[map][sub(key, nul + 1)] = dict:get(key)
    end
  end
  return stats
end

--- Zeroes the counters and the fault uses; the configuration stays.
function shared.reset_counters()
  for _, key in ipairs(dict:get_keys(0)) do
    local kind = sub(key, 1, 2)
    if kind == "c:" or kind == "m:" or kind == "f:" then dict:delete(key) end
  end
end

return shared
