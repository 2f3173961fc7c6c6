-- POST /_emulator/instances/seed: many instances at once, with the startedAt values a test
-- chooses (ties included), without one HTTP start each. For the specs of paging past the
-- API's window ($skip <= 4000, $top <= 1000): 20,000 instances take well under a second.
--
-- Body: { count = n (1 to 200000), definition = id (default "simple"), started_at = one
-- date-time for all or a list of count date-times (yyyy-MM-dd'T'HH:mm:ss.SSS'Z', not in the
-- future), status = "RUNNING" (or ERRONEOUS, SUSPENDED, CANCELED, COMPLETED), context = {} }.
-- Each instance is started as POST /v1/workflow-instances starts one (the definition's
-- steps run, so orderapproval makes a task each), then its startedAt, its tasks' createdAt
-- and lastChangedAt and its log entries get the chosen time. The instance and task lists
-- are kept in time order with ties in creation order, so listings stay as for started
-- instances. Answers { seeded = n, ids = [ids in the order of started_at] }.
-- The instances land in the worker that answers (one worker by default).
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"
local store = require "sapwf.emulator.server.store"
local engine = require "sapwf.emulator.server.engine"

local type, ipairs, pairs, floor = type, ipairs, pairs, math.floor
local sort = table.sort

local seed = {}

local STATUSES = { RUNNING = true, ERRONEOUS = true, SUSPENDED = true, CANCELED = true,
  COMPLETED = true }
local MAX_COUNT = 200000

local function copy(value)
  if type(value) ~= "table" or value == json.null then return value end
  local out = setmetatable({}, getmetatable(value))
  for k, v in pairs(value) do out[k] = copy(v) end
  return out
end

-- Keeps a list (instances or tasks) in the order of field, ties in creation order: what
-- listings walk instead of sorting. Sorted only when a seeded record broke the order.
local function keep_ordered(list, field)
  for i = 2, #list do
    if list[i][field] < list[i - 1][field] then
      sort(list, function(a, b)
        local x, y = a[field], b[field]
        if x == y then return a.seq < b.seq end
        return x < y
      end)
      return
    end
  end
end

--- Checks spec (the decoded body) and seeds; returns status, answer (a table).
function seed.instances(spec)
  if not json.is_object(spec) then return 400, { error = "the body must be a JSON object" } end
  local count = spec.count
  if type(count) ~= "number" or count < 1 or count > MAX_COUNT or count ~= floor(count) then
    return 400, { error = "count must be a whole number from 1 to " .. MAX_COUNT }
  end
  local definition = store.definitions[spec.definition or "simple"]
  if not definition then
    return 400, { error = "no definition '" .. tostring(spec.definition) .. "'" }
  end
  local status = spec.status or "RUNNING"
  if not STATUSES[status] then return 400, { error = "status: one of an instance's" } end
  local context = spec.context or {}
  if not json.is_object(context) then return 400, { error = "context must be an object" } end
  local times = spec.started_at
  if times == nil then times = util.iso() end
  if type(times) == "string" then
    local one = times
    times = setmetatable({}, { __index = function() return one end })
  elseif not json.is_array(times) or #times ~= count then
    return 400, { error = "started_at must be a date-time or a list of count date-times" }
  end
  local now = util.iso()
  for i = 1, count do
    local t = times[i]
    if type(t) ~= "string" or util.parse_date(t) ~= t then
      return 400, { error = "started_at[" .. i .. "]: not a date-time like "
        .. "2024-05-01T12:00:00.000Z" }
    end
    if t > now then
      return 400, { error = "started_at[" .. i .. "] is in the future (later starts would "
        .. "come before it)" }
    end
    if i == 1 and type(spec.started_at) == "string" then break end
  end

  local ids = {}
  for i = 1, count do
    local at = times[i]
    local instance = engine.start(definition, copy(context), nil, "seeded")
    instance.startedAt = at
    for _, entry in ipairs(instance.logs or {}) do entry.timestamp = at end
    for _, task in ipairs(instance.tasks or {}) do
      task.createdAt, task.lastChangedAt = at, at
    end
    if status ~= "RUNNING" then
      instance.status = status
      if status == "COMPLETED" or status == "CANCELED" then instance.completedAt = at end
    end
    ids[i] = instance.id
  end
  keep_ordered(store.instances, "startedAt")
  keep_ordered(store.tasks, "createdAt")
  return 200, { seeded = count, ids = json.list(ids) }
end

-- The body of the control request: nginx keeps one over client_body_buffer_size in a file.
local function body_text()
  ngx.req.read_body()
  local text = ngx.req.get_body_data()
  if text then return text end
  local file = ngx.req.get_body_file()
  local handle = file and io.open(file, "rb")
  if not handle then return nil end
  text = handle:read("*a")
  handle:close()
  return text
end

--- The control handler: status, body text.
function seed.handle()
  local text = body_text()
  local spec = text and text ~= "" and json.decode(text)
  local status, answer = seed.instances(spec)
  return status, json.encode(answer)
end

return seed
