--- User task instances and task definitions.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local pairs, type, format = pairs, type, string.format
local open, call, path_of, by_id = base.open, base.call, base.path, base.by_id

local methods = {}
local check_id, check_table, encode = base.check_id, base.check_table, base.encode

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
-- @function methods.task_context
-- @string id the task id
-- @treturn table the context
-- @treturn table meta
methods.task_context = by_id(CONTEXT, "task_context")

--- The task's custom attributes: array, meta.
-- @function methods.task_attributes
-- @string id the task id
-- @treturn table array of {id, label, value, type}
-- @treturn table meta
methods.task_attributes = by_id(ATTRIBUTES, "task_attributes")

--- The task's attachments, meta.
-- @function methods.task_attachments
-- @string id the task id
-- @treturn table the attachments
-- @treturn table meta
methods.task_attachments = by_id(ATTACHMENTS, "task_attachments")

--- The task's form (404 when the task has none).
-- @function methods.task_form
-- @string id the task id
-- @treturn table the form
-- @treturn table meta
methods.task_form = by_id(FORM, "task_form")

--- The model of the task's form.
-- @function methods.task_form_model
-- @string id the task id
-- @treturn table the form model
-- @treturn table meta
methods.task_form_model = by_id(FORM_MODEL, "task_form_model")

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
      base.argerror("update_task", 2, format("%s: %s expected, got %s", name,
                                               EXPECTED[want], got))
    end
  end
  local body = base.join_lists("update_task", 2, fields, TASK_FIELDS, TASK_LISTS)
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

return { methods = methods }
