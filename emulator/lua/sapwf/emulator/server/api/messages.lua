-- POST /v1/messages/: a message for the instances waiting at its intermediate message event.
local json = require "sapwf.emulator.server.json"
local respond = require "sapwf.emulator.server.respond"
local store = require "sapwf.emulator.server.store"
local engine = require "sapwf.emulator.server.engine"
local shared = require "sapwf.emulator.server.shared"

local type, ipairs, pairs, setmetatable, getmetatable = type, ipairs, pairs, setmetatable,
  getmetatable
local is_object = json.is_object

local messages = {}

-- Each consuming instance gets its own copy of the message context.
local function deep_copy(value)
  if type(value) ~= "table" then return value end
  local copy = {}
  for k, v in pairs(value) do copy[k] = deep_copy(v) end
  return setmetatable(copy, getmetatable(value))
end

local function string_of(value, min, max)
  return type(value) == "string" and #value >= min and #value <= max
end

function messages.send(req)
  local body = req:json()
  if not is_object(body) or not string_of(body.definitionId, 1, 128) then
    return respond.bad_request()
  end
  local instance_id, definition_id = body.workflowInstanceId, body.workflowDefinitionId
  local key = body.businessKey
  if instance_id ~= nil then
    if definition_id ~= nil or key ~= nil then
      return respond.bad_request("Use either workflowInstanceId or workflowDefinitionId with"
        .. " businessKey, not both.")
    end
    if not string_of(instance_id, 36, 36) then
      return respond.bad_request("The workflowInstanceId is not a workflow instance id.")
    end
  elseif not string_of(definition_id, 1, 64) or not string_of(key, 0, 255) then
    return respond.bad_request("Name the instances with workflowInstanceId or with"
      .. " workflowDefinitionId and businessKey.")
  end
  local context = body.context
  if context ~= nil and not is_object(context) then return respond.bad_request() end

  local name, consumers = body.definitionId, {}
  if instance_id then
    local instance = store.instance_by_id[instance_id]
    if instance and engine.waits_for(instance, name) then consumers[1] = instance end
  else
    for _, instance in ipairs(store.instances) do
      if not instance.removed and instance.definitionId == definition_id
          and instance.businessKey == key and engine.waits_for(instance, name) then
        consumers[#consumers + 1] = instance
      end
    end
  end
  if not consumers[1] then return respond.fail("message_no_match") end

  local ids = {}
  for i, instance in ipairs(consumers) do
    engine.deliver_message(instance, context and deep_copy(context))
    ids[i] = { id = instance.id }
  end
  shared.count("messages")
  return 200, ids
end

return messages
