--- User task instances and task definitions.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local pairs, ipairs, type, tostring, format = pairs, ipairs, type, tostring, string.format
local open, call, path_of, by_id = base.open, base.call, base.path, base.by_id

local methods = {}
local check_id, check_table, encode_object = base.check_id, base.check_table,
  base.encode_object

local TASKS, TASK = ops.tasks, ops.task
local COMPLETE, UPDATE = ops.complete_task, ops.update_task
local CONTEXT, ATTRIBUTES, ATTACHMENTS = ops.task_context, ops.task_attributes,
  ops.task_attachments
local FORM, FORM_MODEL, DEFINITIONS = ops.task_form, ops.task_form_model, ops.task_definitions

--- The user task instances matching q; with no status filter, tasks of every status. At most
-- one page: see wf:each_task for all matches.
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "createdAt desc"), `inlinecount` (true: meta.total), `expand`; the filters
-- `activityId`, `claimedAt`, `claimedFrom`, `claimedUpTo`, `completedAt`, `completedFrom`,
-- `completedUpTo`, `containsText`, `createdAt`, `createdFrom`, `createdUpTo`,
-- `definitionId`, `description`, `dueDate`, `dueDateFrom`, `dueDateUpTo`, `id`,
-- `lastChangedAt`, `lastChangedFrom`, `lastChangedUpTo`, `priority`, `processor`,
-- `recipientGroups`, `recipientUsers`, `status`, `subject`, `workflowDefinitionId`,
-- `workflowInstanceId` (an array value repeats a filter: the service combines them with
-- OR). An unknown name raises.
-- @treturn table array of tasks: id, subject, status, processor, workflowInstanceId, ...
-- @fails "forbidden" without TASK_GET
function methods:tasks(q)
  open(self, "tasks")
  return call(self, TASKS, TASKS.path, query.build(TASKS, q, "tasks", 1))
end

--- One user task instance.
-- @tparam string id the task instance id
-- @tparam[opt] table opts `expand = "attributes"` adds its custom attributes
-- @treturn table the task: id, subject, status, processor, ...
-- @fails "forbidden" without TASK_GET; "not_found" for an unknown id
function methods:task(id, opts)
  open(self, "task")
  check_id("task", 1, id)
  return call(self, TASK, path_of(TASK, id), query.build(TASK, opts, "task", 2))
end

--- The context of the task's workflow instance, as the task sees it.
-- @function methods:task_context
-- @tparam string id the task instance id
-- @treturn table the context
-- @fails "forbidden" without TASK_GET_CONTEXT; "not_found" for an unknown id
methods.task_context = by_id(CONTEXT, "task_context")

--- The task's custom attributes.
-- @function methods:task_attributes
-- @tparam string id the task instance id
-- @treturn table array of {id, label, value, type}
-- @fails "forbidden" without TASK_GET_ATTRIBUTES; "not_found" for an unknown id
methods.task_attributes = by_id(ATTRIBUTES, "task_attributes")

--- The task's attachments.
-- @function methods:task_attachments
-- @tparam string id the task instance id
-- @treturn table the attachments
-- @fails "forbidden" without TASK_GET_ATTACHMENTS; "not_found" for an unknown id
methods.task_attachments = by_id(ATTACHMENTS, "task_attachments")

--- The task's form.
-- @function methods:task_form
-- @tparam string id the task instance id
-- @treturn table the form
-- @fails "forbidden" without TASK_GET_FORM; "not_found" for an unknown id, or a task
-- without a form
methods.task_form = by_id(FORM, "task_form")

--- The model of the task's form.
-- @function methods:task_form_model
-- @tparam string id the task instance id
-- @treturn table the form model
-- @fails "forbidden" without TASK_GET_FORM_MODEL; "not_found" for an unknown id, or a task
-- without a form
methods.task_form_model = by_id(FORM_MODEL, "task_form_model")

local COMPLETE_OPTIONS = { decision = true }

--- Completes a user task, merging context into the workflow's context. For an approval form
-- of SAP Build Process Automation, opts.decision is the button pressed. (SAP's definition of
-- the Workflow service's task update has no decision field; there it is sent as given, and
-- the service decides what it makes of it.)
-- @tparam string id the task instance id
-- @tparam[opt] table context the fields the task's user filled in (default: none)
-- @tparam[opt] table opts `decision`: the id of one of the task form's decisions (its
-- buttons, e.g. "approve"; wf:task_form_model lists them)
-- @treturn boolean true
-- @fails "forbidden" without TASK_COMPLETE; "not_found" for an unknown id; "invalid" (422)
-- for a task that is not READY or RESERVED (the local emulator's answer; SAP's definition
-- lists 422 and 409 "conflict" for this call without saying which case gets which), a value
-- that is not JSON or a decision the form does not offer
function methods:complete_task(id, context, opts)
  open(self, "complete_task")
  check_id("complete_task", 1, id)
  if context ~= nil then check_table("complete_task", 2, context) end
  local decision
  if opts ~= nil then
    check_table("complete_task", 3, opts)
    for name in pairs(opts) do
      if not COMPLETE_OPTIONS[name] then
        base.argerror("complete_task", 3, format("unknown option '%s' (decision)",
                                                 tostring(name)))
      end
    end
    decision = opts.decision
    if decision ~= nil and (type(decision) ~= "string" or decision == "") then
      base.argerror("complete_task", 3, "decision: non-empty string expected, got "
                    .. (decision == "" and '""' or type(decision)))
    end
  end
  local path = path_of(COMPLETE, id)
  local body = '{"status":"COMPLETED"'
  -- (the context is merged into the workflow's: a JSON object)
  for _, part in ipairs({ { "context", context, encode_object },
                          { "decision", decision, base.encode } }) do
    if part[2] ~= nil then
      local text, err = part[3](part[2], part[1], COMPLETE, path)
      if not text then return nil, err end
      body = body .. ',"' .. part[1] .. '":' .. text
    end
  end
  return call(self, COMPLETE, path, "", body .. "}")
end

-- Field -> the Lua type it takes ("list": a string, or an array joined with ",").
local TASK_FIELDS = {
  context = "table", attachments = "table", status = "string", subject = "string",
  description = "string", recipientUsers = "list", recipientGroups = "list",
  processor = "string", dueDate = "string", priority = "string", decision = "string",
}
local TASK_LISTS = { recipientUsers = true, recipientGroups = true }
-- The values SAP's definition allows (UpdateTaskInstancePayload). The status also picks the
-- operation, and with it the authority a 403 names: "completed" would be an update.
local TASK_ENUMS = {
  status = { values = { COMPLETED = true }, text = '"COMPLETED"' },
  priority = { values = { VERY_HIGH = true, HIGH = true, MEDIUM = true, LOW = true },
               text = '"VERY_HIGH", "HIGH", "MEDIUM" or "LOW"' },
}
local EXPECTED = { table = "table", string = "string", list = "string or list of strings" }

--- Changes task properties. status = "COMPLETED" completes the task (and then needs the
-- authority TASK_COMPLETE instead of TASK_UPDATE), with a decision if the form has buttons.
-- @tparam string id the task instance id
-- @tparam table fields any of context, attachments (tables), status, subject, description,
-- processor, dueDate, priority, decision (strings; decision only with status =
-- "COMPLETED"), recipientUsers, recipientGroups (a string of comma-separated names, or an
-- array of names)
-- @treturn boolean true
-- @fails "forbidden" without TASK_UPDATE; "not_found" for an unknown id
function methods:update_task(id, fields)
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
    local enum = TASK_ENUMS[name]
    if enum and not enum.values[value] then
      base.argerror("update_task", 2, format("%s: %s expected, got '%s'", name, enum.text,
                                               value))
    end
  end
  if fields.decision ~= nil and fields.status ~= "COMPLETED" then
    base.argerror("update_task", 2, 'decision goes with status = "COMPLETED"')
  end
  local body = base.join_lists("update_task", 2, fields, TASK_FIELDS, TASK_LISTS)
  local op = body.status == "COMPLETED" and COMPLETE or UPDATE
  local path = path_of(op, id)
  local text, err = encode_object(body, "fields", op, path, { "context", "attachments" })
  if not text then return nil, err end
  return call(self, op, path, "", text)
end

--- The user task definitions of the deployed workflows.
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000),
-- `inlinecount` (true: meta.total), `expand`. An unknown name raises.
-- @treturn table array of task definitions
-- @fails "forbidden" without TASK_DEFINITION_GET
function methods:task_definitions(q)
  open(self, "task_definitions")
  return call(self, DEFINITIONS, DEFINITIONS.path,
              query.build(DEFINITIONS, q, "task_definitions", 1))
end

return { methods = methods }
