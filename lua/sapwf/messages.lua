--- Messages to intermediate message events.
local base = require "sapwf.base"
local ops = require "sapwf.operations".by_name

local type, pairs, tostring, error, format = type, pairs, tostring, error, string.format
local open, call, encode_object = base.open, base.call, base.encode_object

local methods = {}

local SEND = ops.send_message

local FIELDS = { definitionId = "string", workflowInstanceId = "string",
                 workflowDefinitionId = "string", businessKey = "string", context = "table" }

local function bad(msg)
  error("bad argument #1 to 'send_message' (" .. msg .. ")", 3)
end

--- Sends a message to the intermediate message events that wait for it. Either addresses one
-- instance, `{definitionId = message_name, workflowInstanceId = id}`, or every instance of
-- a definition with a business key, `{definitionId =, workflowDefinitionId =, businessKey
-- =}`; an optional `context` table is merged into theirs. Breaking that rule, or an empty
-- string in one of these fields, is a mistake in the calling code, so it raises.
-- @tparam table message as above
-- @treturn table the instances that consumed it: array of {id = ...}
-- @fails "forbidden" without MESSAGE_SEND; "invalid" (422, code
-- bpm.workflowruntime.rest.message.no.match) when no instance waits for it
function methods:send_message(message)
  open(self, "send_message")
  if type(message) ~= "table" then
    bad(format("table expected, got %s", type(message)))
  end
  for name, value in pairs(message) do
    local want = FIELDS[name]
    if not want then
      bad(format("unknown field '%s'; known: businessKey, context, definitionId, "
                 .. "workflowDefinitionId, workflowInstanceId", tostring(name)))
    end
    if type(value) ~= want then
      bad(format("field '%s' must be a %s, got %s", name, want, type(value)))
    end
    -- an empty address is no address: a script's empty business key would reach every
    -- waiting instance that has none (the definitionId's own message is below)
    if value == "" and name ~= "definitionId" then
      bad(format("field '%s' is empty", name))
    end
  end
  if message.definitionId == nil or message.definitionId == "" then
    bad("field 'definitionId' (the message name) is required")
  end
  local by_instance = message.workflowInstanceId ~= nil
  local by_key = message.workflowDefinitionId ~= nil or message.businessKey ~= nil
  if by_instance and by_key then
    bad("give either workflowInstanceId or workflowDefinitionId with businessKey, not both")
  elseif not by_instance and not by_key then
    bad("field 'workflowInstanceId', or 'workflowDefinitionId' with 'businessKey', "
        .. "is required")
  elseif by_key and (message.workflowDefinitionId == nil or message.businessKey == nil) then
    bad(message.businessKey == nil and "field 'businessKey' is required with workflowDefinitionId"
        or "field 'workflowDefinitionId' is required with businessKey")
  end
  local text, err = encode_object(message, "message", SEND, SEND.path, { "context" })
  if not text then return nil, err end
  return call(self, SEND, SEND.path, "", text)
end

return { methods = methods }
