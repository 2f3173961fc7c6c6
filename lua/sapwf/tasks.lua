--- User task instances and task definitions.
local client = require "sapwf.client"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local pairs, type, format = pairs, type, string.format
local methods, open, call, path_of = client.methods, client.open, client.call, client.path
local check_id, check_table, encode = client.check_id, client.check_table, client.encode

local TASKS, TASK = ops.tasks, ops.task
local COMPLETE, UPDATE = ops.complete_task, ops.update_task
local CONTEXT, ATTRIBUTES, ATTACHMENTS = ops.task_context, ops.task_attributes,
  ops.task_attachments
local FORM, FORM_MODEL, DEFINITIONS = ops.task_form, ops.task_form_model, ops.task_definitions

--- Task instances matching q (no filter: all statuses): array, meta.
function methods.tasks(self, q)
  open(self, "tasks")
  return call(self, TASKS, TASKS.path, query.build(TASKS, q, "tasks", 1))
end

--- One task; opts.expand = "attributes" adds its custom attributes.
function methods.task(self, id, opts)
  open(self, "task")
  check_id("task", 1, id)
  return call(self, TASK, path_of(TASK, id), query.build(TASK, opts, "task", 2))
end

--- The context of the task's workflow instance, as the task sees it: a table, meta.
function methods.task_context(self, id)
  open(self, "task_context")
  check_id("task_context", 1, id)
  return call(self, CONTEXT, path_of(CONTEXT, id), "")
end

--- The task's custom attributes: array, meta.
function methods.task_attributes(self, id)
  open(self, "task_attributes")
  check_id("task_attributes", 1, id)
  return call(self, ATTRIBUTES, path_of(ATTRIBUTES, id), "")
end

--- The task's attachments, meta.
function methods.task_attachments(self, id)
  open(self, "task_attachments")
  check_id("task_attachments", 1, id)
  return call(self, ATTACHMENTS, path_of(ATTACHMENTS, id), "")
end

--- The task's form (404 when the task has none).
function methods.task_form(self, id)
  open(self, "task_form")
  check_id("task_form", 1, id)
  return call(self, FORM, path_of(FORM, id), "")
end

--- The model of the task's form.
function methods.task_form_model(self, id)
  open(self, "task_form_model")
  check_id("task_form_model", 1, id)
  return call(self, FORM_MODEL, path_of(FORM_MODEL, id), "")
end

--- Completes a task, merging context (optional table) into the workflow context.
function methods.complete_task(self, id, context)
  open(self, "complete_task")
  check_id("complete_task", 1, id)
  local path = path_of(COMPLETE, id)
  local body = '{"status":"COMPLETED"}'
  if context ~= nil then
    check_table("complete_task", 2, context)
    local text, err = encode(context, "context", COMPLETE, path)
    if not text then return nil, err end
    body = '{"status":"COMPLETED","context":' .. text .. '}'
  end
  return call(self, COMPLETE, path, "", body)
end

-- Field -> the Lua type it takes ("list": a string, or an array joined with ",").
local TASK_FIELDS = {
  context = "table", attachments = "table", status = "string", subject = "string",
  description = "string", recipientUsers = "list", recipientGroups = "list",
  processor = "string", dueDate = "string", priority = "string",
}
local TASK_LISTS = { recipientUsers = true, recipientGroups = true }
local EXPECTED = { table = "table", string = "string", list = "string or list of strings" }

--- Changes task properties: {processor = "bob", priority = "HIGH", recipientUsers = {..}}.
-- Recipient arrays are joined with "," as the API wants. status = "COMPLETED" completes
-- the task (and then needs TASK_COMPLETE instead of TASK_UPDATE).
function methods.update_task(self, id, fields)
  open(self, "update_task")
  check_id("update_task", 1, id)
  check_table("update_task", 2, fields)
  -- Values of the wrong type would come back from the service as a 400: raise instead
  -- (join_lists checks the names and list items).
  for name, value in pairs(fields) do
    local want, got = TASK_FIELDS[name], type(value)
    if want and got ~= want and not (want == "list" and (got == "string" or got == "table"))
    then
      client.argerror("update_task", 2, format("%s: %s expected, got %s", name,
                                               EXPECTED[want], got))
    end
  end
  local body = client.join_lists("update_task", 2, fields, TASK_FIELDS, TASK_LISTS)
  local op = body.status == "COMPLETED" and COMPLETE or UPDATE
  local path = path_of(op, id)
  local text, err = encode(body, "fields", op, path)
  if not text then return nil, err end
  return call(self, op, path, "", text)
end

--- Task definitions: array, meta (q: top, skip, inlinecount, expand = "attributeDefinitions").
function methods.task_definitions(self, q)
  open(self, "task_definitions")
  return call(self, DEFINITIONS, DEFINITIONS.path,
              query.build(DEFINITIONS, q, "task_definitions", 1))
end
