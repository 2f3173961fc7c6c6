--- Messages to intermediate message events.
local base = require "sapwf.base"
local ops = require "sapwf.operations".by_name

local type, pairs, tostring, error, format = type, pairs, tostring, error, string.format
local open, call, encode = base.open, base.call, base.encode

local methods = {}

local SEND = ops.send_message

local FIELDS = { definitionId = "string", workflowInstanceId = "string",
                 workflowDefinitionId = "string", businessKey = "string", context = "table" }

local function bad(msg)
  error("bad argument #1 to 'send_message' (" .. msg .. ")", 3)
end

--- Sends a message: `{definitionId = message_name, workflowInstanceId = id}` addresses one
-- instance; `{definitionId =, workflowDefinitionId =, businessKey =}` addresses every instance
-- of that definition with that business key; context (optional) is merged into theirs.
-- Returns the instances that consumed it (array of {id = ...}), meta. A message no instance
-- waits for fails with kind "invalid" (422, code bpm.workflowruntime.rest.message.no.match).
--
-- The addressing rule is checked before sending and a violation raises: it is a mistake in
-- the calling code, not a condition to handle at run time.
function methods.send_message(self, message)
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
  local text, err = encode(message, "message", SEND, SEND.path)
  if not text then return nil, err end
  return call(self, SEND, SEND.path, "", text)
end

return { methods = methods }
