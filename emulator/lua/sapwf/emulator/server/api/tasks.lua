-- /v1/task-instances... and /v1/task-definitions.
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"
local respond = require "sapwf.emulator.server.respond"
local query = require "sapwf.emulator.server.query"
local views = require "sapwf.emulator.server.views"
local store = require "sapwf.emulator.server.store"
local engine = require "sapwf.emulator.server.engine"

local type, ipairs, pairs = type, ipairs, pairs
local find, lower = string.find, string.lower
local list, is_object = json.list, json.is_object

local tasks = {}

local ORDER_FIELDS = { claimedAt = true, completedAt = true, createdAt = true,
  lastChangedAt = true, dueDate = true, subject = true, description = true, activityId = true,
  id = true, processor = true, workflowDefinitionId = true, workflowInstanceId = true,
  priority = true }
local STATUSES = { READY = true, RESERVED = true, COMPLETED = true, CANCELED = true }
local PRIORITIES = { LOW = true, MEDIUM = true, HIGH = true, VERY_HIGH = true }
local PRIORITY_RANK = { LOW = 1, MEDIUM = 2, HIGH = 3, VERY_HIGH = 4 }

local function rank(priority) return priority and PRIORITY_RANK[priority] end

local function no_commas(values, name)
  for _, value in ipairs(values or {}) do
    if find(value, ",", 1, true) then
      query.invalid("The query parameter '" .. name .. "' must not contain commas.")
    end
  end
end

local function any_of(wanted, have)
  for _, item in ipairs(have) do
    if wanted[item] then return true end
  end
  return false
end

-- The filter of GET /v1/task-instances as one predicate (every task when none is given).
local function task_filter(args)
  local instance_ids = query.values(args, "workflowInstanceId")
  query.check_length(instance_ids, "workflowInstanceId", 36, 36)
  local definition_ids = query.values(args, "workflowDefinitionId")
  query.check_length(definition_ids, "workflowDefinitionId", 1, 64)
  local processors = query.values(args, "processor")
  query.check_length(processors, "processor", 0, 255)
  local ids = query.values(args, "id")
  query.check_length(ids, "id", 36, 36)
  local activities = query.values(args, "activityId")
  local descriptions = query.values(args, "description")
  query.check_length(descriptions, "description", 0, 4000)
  no_commas(descriptions, "description")
  local subjects = query.values(args, "subject")
  query.check_length(subjects, "subject", 0, 255)
  no_commas(subjects, "subject")
  local dates = {}
  for _, prefix in ipairs({ "created", "claimed", "completed", "lastChanged" }) do
    local filter = query.date_filter(args, prefix .. "At", prefix .. "From", prefix .. "UpTo")
    if filter then dates[#dates + 1] = { prefix .. "At", filter } end
  end
  local due = query.date_filter(args, "dueDate", "dueDateFrom", "dueDateUpTo")
  if due then dates[#dates + 1] = { "dueDate", due } end
  local priorities = query.enum(args, "priority", PRIORITIES)
  local statuses = query.enum(args, "status", STATUSES)
  local users = query.set(query.values(args, "recipientUsers"))
  local groups = query.set(query.values(args, "recipientGroups"))
  -- once: SAP's task list says "You must not use this parameter more than once" (a repeat
  -- answers 400), unlike the instance list's (api/instances.lua)
  local text = query.single(args, "containsText")
  local definitions = query.set(query.values(args, "definitionId"))
  local attributes = query.attribute_filters(args)

  instance_ids, definition_ids = query.set(instance_ids), query.set(definition_ids)
  processors, ids, activities = query.set(processors), query.set(ids), query.set(activities)
  descriptions, subjects = query.set(descriptions), query.set(subjects)
  text = text and lower(text)
  return function(t)
    for _, date in ipairs(dates) do
      if not date[2](t[date[1]]) then return false end
    end
    return (not instance_ids or instance_ids[t.workflowInstanceId])
      and (not definition_ids or definition_ids[t.workflowDefinitionId])
      and (not processors or processors[t.processor]) and (not ids or ids[t.id])
      and (not activities or activities[t.activityId])
      and (not descriptions or descriptions[t.description])
      and (not subjects or subjects[t.subject])
      and (not priorities or priorities[t.priority]) and (not statuses or statuses[t.status])
      and (not users or any_of(users, t.recipientUsers))
      and (not groups or any_of(groups, t.recipientGroups))
      and (not definitions or definitions[t.definitionId])
      and (not text or util.contains(t.subject, text) or util.contains(t.description, text)
        or util.contains(t.activityId, text) or util.contains(t.id, text)
        or util.contains(t.processor, text) or util.contains(t.workflowDefinitionId, text)
        or util.contains(t.workflowInstanceId, text))
      and (not attributes or query.attributes_match(attributes, t.attributes))
      or false
  end
end

function tasks.list(req)
  local args = req:args()
  local paging = query.paging(args)
  local expand = query.expand(args, "attributes")
  local field, descending = query.orderby(args, ORDER_FIELDS, "createdAt", false)
  local matches, viewer = views.scoped(req, task_filter(args),
                                       function(t) return t.workflowDefinitionId end)
  local records = query.select(store.tasks, matches, field, "createdAt", descending,
    field == "priority" and rank or nil)
  local page, headers = query.page(records, paging, function(task)
    return views.task(task, expand, viewer)
  end)
  return 200, list(page), headers
end

local function find_task(req)
  local task = store.task_by_id[req.params.taskInstanceId]
  if not task then return nil, respond.fail("task_not_found") end
  return task
end

function tasks.get(req)
  local expand = query.expand(req:args(), "attributes")
  local task, status, body = find_task(req)
  if not task then return status, body end
  return 200, views.task(task, expand, views.viewer(req))
end

--- Completing needs TASK_COMPLETE, any other change TASK_UPDATE.
function tasks.update_authority(req)
  local body = req:json()
  if is_object(body) and body.status == "COMPLETED" then return "TASK_COMPLETE" end
  return "TASK_UPDATE"
end

local function invalid_patch(message)
  return respond.fail("task_patch_invalid", nil, { { severity = "error", message = message } })
end

local STRING_FIELDS = { "status", "subject", "description", "processor", "priority",
  "dueDate", "recipientUsers", "recipientGroups", "decision" }

-- The first reason the payload cannot be applied (422), or nil.
local function patch_problem(patch)
  if patch.status ~= nil and patch.status ~= "COMPLETED" then
    return "The status '" .. patch.status .. "' cannot be set; only COMPLETED is allowed."
  end
  if patch.subject and #patch.subject > 255 then
    return "The subject could not be set, because the value submitted is too long."
  end
  if patch.description and #patch.description > 4000 then
    return "The description could not be set, because the value submitted is too long."
  end
  if patch.processor and (#patch.processor > 255 or find(patch.processor, ",", 1, true)) then
    return "The processor could not be set: it must be one user of at most 255 characters."
  end
  if patch.priority and not PRIORITIES[patch.priority] then
    return "The priority '" .. patch.priority .. "' is invalid."
  end
  if patch.dueDate and not util.is_datetime(patch.dueDate) then
    return "The due date could not be set: it is not a date-time."
  end
  for _, name in ipairs({ "recipientUsers", "recipientGroups" }) do
    local members = patch[name] and util.split_list(patch[name])
    if members and #members > 100 then
      return "The " .. name .. " could not be set: at most 100 are allowed."
    end
  end
  if patch.context ~= nil and not is_object(patch.context) then
    return "The context provided in the request body is not a JSON object."
  end
  return nil
end

-- A decision (the button of an SAP Build Process Automation approval form) completes the
-- task, and must be one its form offers. [inferred: SAP documents the field by example
-- only, {"status": "COMPLETED", "decision": "<button id>"}.]
local function decision_problem(task, patch)
  if patch.decision == nil then return nil end
  if patch.status ~= "COMPLETED" then
    return "A decision can only be given with the status COMPLETED."
  end
  local form = task.form and store.forms[task.form]
  local decisions = form and form.model and form.model.decisions or {}
  local ids = {}
  for i, d in ipairs(decisions) do
    if d.id == patch.decision then return nil end
    ids[i] = d.id
  end
  if #ids == 0 then return "The task's form offers no decisions." end
  return "The decision '" .. patch.decision .. "' is not one of the task's decisions: "
    .. table.concat(ids, ", ") .. "."
end

function tasks.update(req)
  local patch = req:json()
  if not is_object(patch) then return respond.bad_request() end
  for _, name in ipairs(STRING_FIELDS) do
    if patch[name] ~= nil and type(patch[name]) ~= "string" then return respond.bad_request() end
  end
  if patch.attachments ~= nil and not is_object(patch.attachments) then
    return respond.bad_request()
  end
  local task, status, body = find_task(req)
  if not task then return status, body end
  local problem = patch_problem(patch) or decision_problem(task, patch)
  if problem then return invalid_patch(problem) end
  if task.status == "COMPLETED" or task.status == "CANCELED" then
    return invalid_patch("The task is " .. task.status .. " and cannot be changed.")
  end
  if task.instance.status ~= "RUNNING" then return respond.conflict() end
  engine.update_task(task, patch, req.user)
  return 204
end

function tasks.attributes(req)
  local task, status, body = find_task(req)
  if not task then return status, body end
  return 200, views.attributes(task.attributes)
end

function tasks.context(req)
  local task, status, body = find_task(req)
  if not task then return status, body end
  return 200, json.encode_exact(task.instance.context)
end

function tasks.attachments(req)
  local task, status, body = find_task(req)
  if not task then return status, body end
  return 200, json.encode_exact(task.instance.attachments or {})
end

local function task_form(req)
  local task, status, body = find_task(req)
  if not task then return nil, status, body end
  local form = task.form and store.forms[task.form]
  if not form then return nil, respond.fail("task_form_not_assigned") end
  return form
end

function tasks.form(req)
  local form, status, body = task_form(req)
  if not form then return status, body end
  return 200, views.form(form)
end

function tasks.form_model(req)
  local form, status, body = task_form(req)
  if not form then return status, body end
  return 200, form.model
end

--- GET /v1/task-definitions: one per user task of each definition, newest first.
function tasks.definitions(req)
  local args = req:args()
  local paging = query.paging(args)
  local expand = query.expand(args, "attributeDefinitions")
  local records = {}
  for _, definition in pairs(store.definitions) do
    for _, task in ipairs(definition.tasks) do
      records[#records + 1] = { seq = definition.seq, createdAt = definition.createdAt,
        definition = definition, task = task }
    end
  end
  query.sort(records, "createdAt", true)
  local page, headers = query.page(records, paging, function(r)
    local attributes
    if expand then
      attributes = {}
      for i, a in ipairs(r.task.attributeDefinitions) do
        attributes[i] = { id = a.id, label = a.label, type = a.type }
      end
      attributes = list(attributes)
    end
    return { id = r.task.id .. "@" .. r.definition.id, name = r.task.name,
      createdAt = r.definition.createdAt, attributeDefinitions = attributes }
  end)
  return 200, list(page), headers
end

return tasks
