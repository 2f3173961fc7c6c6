-- quickstart.lua: the whole round trip with sapwf, one step per line of output.
--
--   SAPWF_SERVICE_KEY=service-key.json lua5.4 examples/quickstart.lua
--
-- `make demo` runs it against the local emulator. Against a real tenant, deploy a workflow
-- and name it with SAPWF_DEFINITION (default "orderapproval"); the message step sends
-- SAPWF_MESSAGE (default "orderShipped"). Steps the tenant cannot do are reported, not hidden.
local sapwf = require "sapwf"

local key_path = os.getenv("SAPWF_SERVICE_KEY")
local definition = os.getenv("SAPWF_DEFINITION") or "orderapproval"
local message_name = os.getenv("SAPWF_MESSAGE") or "orderShipped"
if not key_path then
  io.stderr:write("set SAPWF_SERVICE_KEY to a service key file (`make demo` does it for you)\n")
  os.exit(2)
end

local function step(title, ...)
  io.write(string.format("%-28s", title), ...)
  io.write("\n")
end

-- Stops with the error's one-line description (never a secret) and its fix, if any.
local function check(value, ...)
  if value == nil then
    io.stderr:write("failed: ", tostring((...)), "\n")
    os.exit(1)
  end
  return value, ...
end

local wf = check(sapwf.new{ service_key = key_path })

local _, seconds_left = check(wf:token())
-- (math.huge when the token answer gave no expires_in: OAuth only recommends it)
step("1. token", seconds_left == math.huge and "no expiry given (cached for every call below)"
  or string.format("valid for %d s (cached for every call below)", seconds_left))

local definitions = check(wf:definitions{ top = 10 })
local names = {}
for i, d in ipairs(definitions) do names[i] = d.id .. " v" .. tostring(d.version) end
step("2. definitions", table.concat(names, ", "))

local context = { orderId = "4711", product = "Camera", price = 100,
                  items = sapwf.array{ { sku = "CAM-1", quantity = 1 } } }
local inst = check(wf:start(definition, context))
step("3. started", inst.id, "  status ", inst.status)

local read = check(wf:instance(inst.id))
local ctx = check(wf:context(inst.id))
step("4. read back", read.status, "  context.product = ", tostring(ctx.product),
     ", price = ", tostring(ctx.price))

local tasks = check(wf:tasks{ workflowInstanceId = inst.id, status = "READY" })
if #tasks == 0 then
  step("5. task", "none open for this instance (the model has no user task)")
else
  check(wf:complete_task(tasks[1].id, { approved = true }))
  step("5. task completed", tasks[1].subject or tasks[1].id)
end

local consumed, err = wf:send_message{ definitionId = message_name,
                                        workflowInstanceId = inst.id,
                                        context = { shippedAt = os.date("!%Y-%m-%dT%H:%M:%SZ") } }
if consumed then
  step("6. message sent", message_name, " consumed by ", tostring(#consumed), " instance(s)")
else
  step("6. message", tostring(err))
end

local final = check(wf:instance(inst.id))
step("7. final status", final.status)
wf:close()
