-- The error bodies of the spec (SAP_CP_Workflow_CF.yaml, `responses`) and sending answers.
--
-- A handler answers with `return status, body, headers`: body a string (sent as is), a
-- table (JSON-encoded) or nil (no body); headers a table or nil.
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"

local ngx = ngx
local pairs, type = pairs, type

local respond = {}

respond.JSON = "application/json;charset=UTF-8"

-- Bodies without a logId are the same every time: keep them as text.
respond.UNAUTHORIZED = '{"error":"unauthorized","error_description":'
  .. '"Full authentication is required to access this resource."}'
respond.FORBIDDEN = '{"error":{"message":"User does not have sufficient privileges."}}'
respond.RATE_LIMITED = '{"error":{"code":"bpm.workflowruntime.rate.limit.exceeded",'
  .. '"message":"Your tenant is performing too many requests."}}'

-- name -> status, code, message (the spec's examples)
local CATALOG = {
  bad_request = { 400, "bpm.workflowruntime.rest.content.format.invalid",
    "Unable to parse the request content because it has an unexpected format or structure."
    .. " The content has to be JSON and follow the documented data structure." },
  expressions_not_allowed = { 400,
    "bpm.workflowruntime.rest.instance.finalized.expressions.not.allowed",
    "Could not update the workflow instance because using expressions is not allowed when"
    .. " an instance is in a final status (COMPLETED or CANCELED)." },
  instance_not_found = { 404, "bpm.workflowruntime.rest.instance.not.found",
    "Workflow instance not found" },
  task_not_found = { 404, "bpm.workflowruntime.rest.task.not.found", "Task not found" },
  definition_not_found = { 404, "bpm.workflowruntime.rest.definition.not.found",
    "Workflow definition not found" },
  version_not_found = { 404, "bpm.workflowruntime.rest.definition.version.not.found",
    "Version of the specified workflow definition not found" },
  sample_not_found = { 404, "bpm.workflowruntime.rest.sample.context.not.found",
    "Sample context for workflow definition not found" },
  model_not_found = { 404, "bpm.workflowruntime.rest.json.model.not.found",
    "Workflow definition JSON model not found" },
  form_not_found = { 404, "bpm.formruntime.definition.not.found", "Form definition not found" },
  task_form_not_assigned = { 404, "bpm.workflowruntime.rest.task.form.not.assigned",
    "No task form assigned" },
  job_not_found = { 404, "bpm.workflowruntime.rest.job.not.found", "Job not found" },
  instances_running = { 412, "bpm.workflowruntime.rest.instances.running",
    "Cannot undeploy workflow definition because it still has RUNNING instances." },
  context_invalid = { 422, "bpm.workflowruntime.rest.instance.context.invalid",
    "Workflow context could not be set because it contained errors." },
  status_invalid = { 422, "bpm.workflowruntime.rest.instance.status.invalid",
    "Invalid status requested for workflow instance." },
  task_patch_invalid = { 422, "bpm.workflowruntime.rest.task.change.property.invalid",
    "Could not update task." },
  message_no_match = { 422, "bpm.workflowruntime.rest.message.no.match",
    "No matching workflow instance found for message" },
  internal = { 500, "bpm.workflowruntime.rest.internal.server.error", "Internal server error" },
}

--- status, TechnicalError body for a catalog entry; message and details are optional.
function respond.fail(name, message, details)
  local entry = CATALOG[name]
  return entry[1], { error = { code = entry[2], message = message or entry[3],
    logId = util.uuid(), details = details } }
end

function respond.bad_request(message)
  return respond.fail("bad_request", message)
end

--- 409 has its own shape: no code (ConflictError).
function respond.conflict()
  return 409, { error = { message = "The operation could not be executed because of another"
    .. " activity in the background. Please try again later.", logId = util.uuid() } }
end

local REASONS = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [412] = "Precondition Failed", [413] = "Payload Too Large",
  [415] = "Unsupported Media Type", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

function respond.reason(status)
  return REASONS[status] or "Error"
end

--- The body the spec gives for `status` on an API operation; `not_found` and `unprocessable`
-- name the catalog entries of the operation (faults use this to answer like the service).
function respond.for_status(status, not_found, unprocessable)
  if status == 401 then return 401, respond.UNAUTHORIZED end
  if status == 403 then return 403, respond.FORBIDDEN end
  if status == 429 then return 429, respond.RATE_LIMITED end
  if status == 409 then return respond.conflict() end
  if status == 400 then return respond.fail("bad_request") end
  if status == 404 then return respond.fail(not_found or "instance_not_found") end
  if status == 412 then return respond.fail("instances_running") end
  if status == 422 then return respond.fail(unprocessable or "context_invalid") end
  if status == 500 then return respond.fail("internal") end
  return status, { error = { message = respond.reason(status), logId = util.uuid() } }
end

--- Sends an answer; body is already text (or nil / "" for none). headers may override
-- the Content-Type.
function respond.send(status, body, headers)
  ngx.status = status
  local h = ngx.header
  local has_body = body ~= nil and body ~= ""
  if has_body then
    h["Content-Type"] = respond.JSON
    h["Content-Length"] = #body
  else
    h["Content-Length"] = 0
  end
  if headers then
    for name, value in pairs(headers) do h[name] = value end
  end
  if has_body then
    ngx.print(body)
  else
    ngx.send_headers()
  end
end

--- status, body as text, headers; a view that cannot be encoded is an emulator bug: 500.
function respond.encode(status, body, headers)
  if type(body) ~= "table" then
    if body == json.EMPTY then body = "[]" end   -- an empty list as the whole answer
    return status, body, headers
  end
  local text, err = json.encode(body)
  if text then return status, text, headers end
  ngx.log(ngx.ERR, "emulator: cannot encode the answer: ", err)
  local _, failure = respond.fail("internal")
  return 500, json.encode(failure)
end

return respond
