-- An outside judge of sapwf's requests: every public call of sapwf goes through Stoplight
-- Prism in proxy mode, with SAP's API definition as the contract, in front of the emulator.
-- Prism forwards each request and logs each way it breaks the contract; this fails on any
-- request violation, and lists the response violations (the emulator's answers, checked
-- against the definition too) so the known ones stay in view.
--
--   lua5.4 .ci/prism.lua PRISM_BIN SAP_CP_Workflow_CF.yaml     (from the repository root)
--
-- Prism ignores Swagger 2.0's basePath: its root is the API URL sapwf is given, and its
-- upstream is the emulator's API URL, which ends in the base path.
--
-- One request violation is known and allowed, because SAP's prose and its definition
-- disagree: the list filters may be repeated to mean "or" (status=RUNNING&status=ERRONEOUS,
-- as the API documentation on SAP's API Business Hub describes), while the definition types
-- each filter as one string. sapwf follows the prose; the one call below that repeats a
-- filter is the only place it may show.
package.path = "./lua/?.lua;./lua/?/init.lua;./emulator/lua/?.lua;./emulator/lua/?/init.lua;"
  .. package.path
package.cpath = "./build/lua5.4/?.so;" .. package.cpath

local prism_bin, definition = arg[1], arg[2]
assert(prism_bin and definition, "usage: lua5.4 .ci/prism.lua PRISM_BIN DEFINITION")

local sapwf = require "sapwf"
local emulator = require "sapwf.emulator"
local shell = require "sapwf.emulator.shell"

local function say(fmt, ...) io.stdout:write(string.format(fmt, ...), "\n") io.stdout:flush() end

local emu = assert(emulator.start{})
local log_file = os.tmpname()
local port = tonumber(shell.line("python3 -c 'import socket; s=socket.socket(); "
  .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"))
local key = emu:service_key("full")
local upstream = key.endpoints.workflow_rest_url
local pid = shell.line(string.format("%s proxy -h 127.0.0.1 -p %d %s %s >%s 2>&1 & echo $!",
  prism_bin, port, definition, upstream, log_file))

local function stop()
  shell.run("kill " .. pid .. " 2>/dev/null")
  emu:stop()
end

local ready = false
for _ = 1, 300 do
  if (shell.read_file(log_file) or ""):find("Prism is listening", 1, true) then
    ready = true
    break
  end
  shell.run("sleep 0.1")
end
if not ready then
  io.stderr:write(shell.read_file(log_file) or "", "\nprism did not start\n")
  stop()
  os.exit(1)
end

key.endpoints.workflow_rest_url = "http://127.0.0.1:" .. port
local wf = assert(sapwf.new{ service_key = key, retries = 0 })

-- Every call must succeed, so that what Prism judges are the requests sapwf means to send.
local calls = 0
local function ok(what, value, err)
  calls = calls + 1
  if value == nil then
    stop()
    error(what .. " failed: " .. tostring(err), 2)
  end
  return value
end

-- Definitions
ok("definitions", wf:definitions{ top = 10, skip = 0, orderby = "createdAt desc",
                                  inlinecount = true })
ok("definition", wf:definition("orderapproval"))
ok("definition_versions", wf:definition_versions("orderapproval", { top = 5,
                                                                    inlinecount = true }))
ok("definition_version", wf:definition_version("orderapproval", 1))
ok("definition_model", wf:definition_model("orderapproval"))
ok("definition_model version", wf:definition_model("orderapproval", "2"))
ok("sample_context", wf:sample_context("orderapproval"))
ok("sample_context version", wf:sample_context("orderapproval", 1))

-- Instances: start, list with filters, paging, read, change
local order = ok("start", wf:start("orderapproval", { product = "Camera", price = 100,
  orderId = "prism-1", lines = sapwf.array(), meta = sapwf.object() }))
local simple = ok("start", wf:start("simple", { n = 1, big = 9007199254740991 }))
ok("instances", wf:instances{ definitionId = "orderapproval", status = "RUNNING",
  startedFrom = "2000-01-01T00:00:00.000Z", startedUpTo = "2100-01-01T00:00:00.000Z",
  orderby = "startedAt desc", top = 5, skip = 0, inlinecount = true,
  expand = "attributes", containsText = "Camera", businessKey = "prism-1" })
ok("instances (a repeated filter: the known exception)",
   wf:instances{ status = { "RUNNING", "ERRONEOUS" } })
ok("instance", wf:instance(order.id, { expand = "attributes" }))
ok("context", wf:context(order.id))
ok("attributes", wf:attributes(order.id))
ok("execution_logs", wf:execution_logs(order.id))
ok("error_messages", wf:error_messages(order.id))
ok("roles", wf:roles(order.id))
local attachments = ok("attachments", wf:attachments(order.id))
ok("update_context", wf:update_context(order.id, { note = "checked", lines = sapwf.array{ 1 } }))
ok("replace_context", wf:replace_context(simple.id, { n = 2 }))
ok("update_attachments", wf:update_attachments(order.id, attachments))
ok("update_roles", wf:update_roles(order.id, { viewerUsers = { "ann", "bob" },
                                               adminGroups = "Admins" }))
ok("suspend", wf:suspend(simple.id))
ok("resume", wf:resume(simple.id))
local n = 0
for _ in wf:each_instance{ definitionId = "orderapproval", top = 1 } do n = n + 1 end
ok("each_instance", n > 0 or nil)

-- Tasks
local task = ok("tasks", wf:tasks{ workflowInstanceId = order.id, status = "READY",
  top = 5, inlinecount = true, orderby = "createdAt desc", expand = "attributes" })[1]
ok("task", wf:task(task.id, { expand = "attributes" }))
ok("task_context", wf:task_context(task.id))
ok("task_attributes", wf:task_attributes(task.id))
ok("task_attachments", wf:task_attachments(task.id))
ok("task_form", wf:task_form(task.id))
ok("task_form_model", wf:task_form_model(task.id))
ok("task_definitions", wf:task_definitions{ expand = "attributeDefinitions", top = 5 })
ok("update_task", wf:update_task(task.id, { processor = "ann", priority = "HIGH",
  recipientUsers = { "ann", "bob" }, subject = "Order prism-1", dueDate =
  "2100-01-01T00:00:00.000Z" }))
ok("complete_task", wf:complete_task(task.id, { approved = true }, { decision = "approve" }))
n = 0
for _ in wf:each_task{ workflowInstanceId = order.id } do n = n + 1 end
ok("each_task", n > 0 or nil)

-- Messages, both ways of addressing
local second = ok("start", wf:start("orderapproval", { product = "Lens", orderId = "prism-2" }))
local second_task = ok("tasks", wf:tasks{ workflowInstanceId = second.id })[1]
ok("complete_task", wf:complete_task(second_task.id))
ok("send_message", wf:send_message{ definitionId = "orderShipped",
                                    workflowInstanceId = order.id, context = { shipped = true } })
ok("send_message", wf:send_message{ definitionId = "orderShipped",
  workflowDefinitionId = "orderapproval", businessKey = "prism-2" })

-- Forms, jobs, any other call
ok("forms", wf:forms{ type = "task", top = 5, inlinecount = true })
ok("request", wf:request("GET", "/v1/workflow-definitions", { query = { ["$top"] = 1 } }))
local export_file = os.tmpname()
ok("export", wf:export(export_file))
os.remove(export_file)

-- Many at once
local items = {}
for i = 1, 20 do items[i] = { definitionId = "simple", context = { i = i } } end
for i, r in ipairs(wf:start_many(items, { concurrency = 8 })) do
  ok("start_many item " .. i, not sapwf.is_error(r) and r or nil, r)
end
local ids = {}
for i, r in ipairs(wf:map({ 1, 2, 3 }, function(w, i) return w:start("simple", { i = i }) end)) do
  ids[i] = ok("map item " .. i, r.id and r or nil, r).id
end

-- Ends
ok("cancel", wf:cancel(simple.id))
ok("delete_instances", wf:delete_instances(ids))
local job = ok("undeploy", wf:undeploy("failing", { cascade = true }))
if job.job then ok("job", wf:job(job.job)) end
wf:close()

shell.run("sleep 0.5")                             -- Prism writes its last lines
local log = shell.read_file(log_file) or ""
stop()
os.remove(log_file)

-- Each "Violation:" line after the request it belongs to.
local request_violations, response_violations, known = {}, {}, 0
local current = "?"
for line in log:gmatch("[^\n]+") do
  local method, path = line:match("%[HTTP SERVER%] (%a+) (%S+) .-Request received")
  if method then current = method:upper() .. " " .. path:gsub("%?.*", "") end
  local where, text = line:match("Violation: (%S+) (.*)$")
  if where then
    if where:find("^request%.") then
      if current:find("^GET /v1/workflow%-instances") and where == "request.query.status" then
        known = known + 1
      else
        request_violations[#request_violations + 1] = current .. ": " .. where .. " " .. text
      end
    else
      local generic = current:gsub("/[%x%-]+%-[%x%-]+", "/{id}") .. ": "
        .. where:gsub("%.%d+%.", ".n.") .. " " .. text:gsub("property %d+%.", "property n.")
      response_violations[generic] = (response_violations[generic] or 0) + 1
    end
  end
end

say("prism: %d calls of sapwf through SAP's API definition", calls)
say("prism: %d known request violations (a repeated filter: the prose says OR)", known)
local listed = {}
for line, count in pairs(response_violations) do listed[#listed + 1] = count .. "x " .. line end
table.sort(listed)
say("prism: %d kinds of response violation (the emulator's answers; see RELIABILITY.md):",
    #listed)
for _, line in ipairs(listed) do say("  %s", line) end
if #request_violations > 0 then
  say("prism: %d REQUEST VIOLATIONS:", #request_violations)
  for _, line in ipairs(request_violations) do say("  %s", line) end
  os.exit(1)
end
if known == 0 then
  say("prism: the repeated-filter call showed no violation: is the log format still read?")
  os.exit(1)
end
say("prism: 0 request violations")
