-- What happens to instances and tasks: start, status changes, task completion, messages.
-- The changes a real instance makes asynchronously happen here at once, before the answer.
-- The definitions' own steps live in workflows.lua and call back into these functions.
local util = require "sapwf.emulator.server.util"
local json = require "sapwf.emulator.server.json"
local store = require "sapwf.emulator.server.store"
local shared = require "sapwf.emulator.server.shared"

local pairs, ipairs, type, tostring = pairs, ipairs, type, tostring
local format, floor = string.format, math.floor

local engine = {}

--- The text an expression like ${context.product} gives for a context value.
function engine.text(value)
  local kind = type(value)
  if kind == "string" then return value end
  if kind == "number" then
    if value == floor(value) and value > -2^53 and value < 2^53 then
      return format("%d", value)
    end
    return format("%.14g", value)
  end
  if kind == "boolean" then return tostring(value) end
  return json.integer_text(value) or ""
end

--- Merges patch into target: objects member by member, everything else replaced.
-- Returns the top-level names created and updated (for the execution log).
function engine.merge(target, patch)
  local created, updated = {}, {}
  for name, value in pairs(patch) do
    local old = target[name]
    if old == nil then created[#created + 1] = name else updated[#updated + 1] = name end
    if json.is_object(value) and json.is_object(old) then
      engine.merge(old, value)
    else
      target[name] = value
    end
  end
  return created, updated
end

local function changes(created, updated, deleted)
  local out = {}
  if created[1] then out.create = created end
  if updated[1] then out.update = updated end
  if deleted and deleted[1] then out.delete = deleted end
  return out
end

function engine.patch_context(instance, patch, user)
  local created, updated = engine.merge(instance.context, patch)
  store.log(instance, { type = "WORKFLOW_CONTEXT_PATCHED_BY_ADMIN", userId = user,
    changes = changes(created, updated) })
end

function engine.replace_context(instance, context, user)
  local created, updated, deleted = {}, {}, {}
  for name in pairs(context) do
    if instance.context[name] == nil then created[#created + 1] = name
    else updated[#updated + 1] = name end
  end
  for name in pairs(instance.context) do
    if context[name] == nil then deleted[#deleted + 1] = name end
  end
  instance.context = context
  store.log(instance, { type = "WORKFLOW_CONTEXT_OVERWRITTEN_BY_ADMIN", userId = user,
    changes = changes(created, updated, deleted) })
end

--- Starts an instance of the latest version of definition.
function engine.start(definition, context, attachments, user)
  -- the hot path: no more tables and strings than needed (tasks, errors, attributes and
  -- logs are made when something goes into them; many instances are kept in memory)
  local now = util.iso()
  local instance = {
    id = util.id(), definitionId = definition.id, definitionVersion = definition.latest,
    status = "RUNNING", subject = "", businessKey = "", startedAt = now,
    startedBy = user, context = context, attachments = attachments, behaviour = definition,
  }
  store.add_instance(instance)
  store.log(instance, { type = "WORKFLOW_STARTED", userId = user }, now)
  definition.on_start(instance, engine)
  shared.count("instances_started")
  return instance
end

--- Creates a user task of instance (spec: activityId, name, subject, description, ...).
function engine.create_task(instance, spec)
  local now = util.iso()
  local task = {
    id = util.id(), instance = instance, activityId = spec.activityId,
    definitionId = spec.activityId .. "@" .. instance.definitionId,
    subject = spec.subject, description = spec.description, status = "READY",
    priority = spec.priority or "MEDIUM",
    recipientUsers = spec.recipientUsers or {}, recipientGroups = spec.recipientGroups or {},
    createdAt = now, createdBy = instance.startedBy, lastChangedAt = now,
    workflowDefinitionId = instance.definitionId, workflowInstanceId = instance.id,
    form = spec.form, attributes = spec.attributes or {},
  }
  store.add_task(task)
  local tasks = instance.tasks
  if not tasks then tasks = {}; instance.tasks = tasks end
  tasks[#tasks + 1] = task
  store.log(instance, { type = "USERTASK_CREATED", activityId = task.activityId,
    subject = task.subject, taskId = task.id, userId = instance.startedBy,
    recipientUsers = json.list(util.copy_list(task.recipientUsers)),
    recipientGroups = json.list(util.copy_list(task.recipientGroups)) }, now)
  return task
end

function engine.complete(instance)
  instance.status = "COMPLETED"
  instance.completedAt = util.iso()
  store.log(instance, { type = "WORKFLOW_COMPLETED" })
end

--- An activity failed: the instance is ERRONEOUS and error-messages tells why.
function engine.fail(instance, failure)
  local log_id = util.uuid()
  instance.status = "ERRONEOUS"
  instance.errors = { {
    activityId = failure.activityId, activityName = failure.activityName,
    errorCode = failure.errorCode, logId = log_id, message = failure.message,
    timestamp = util.iso(),
  } }
  store.log(instance, { type = failure.log_type, activityId = failure.activityId,
    subject = failure.activityName, retriesRemaining = 0,
    error = { message = failure.message, errorCode = failure.errorCode, logId = log_id } })
end

function engine.wait_for_message(instance, message, activityId, subject)
  instance.waiting_message = message
  store.log(instance, { type = "INTERMEDIATE_MESSAGE_EVENT_REACHED", activityId = activityId,
    subject = subject })
end

--- Whether instance consumes the message `name` now (not suspended, waiting for it).
function engine.waits_for(instance, name)
  return instance.status == "RUNNING" and instance.waiting_message == name
end

function engine.deliver_message(instance, context)
  if context then engine.merge(instance.context, context) end
  instance.waiting_message = nil
  store.log(instance, { type = "INTERMEDIATE_MESSAGE_EVENT_TRIGGERED",
    activityId = instance.behaviour.message_activity })
  instance.behaviour.on_message(instance, engine)
end

local function close_open_tasks(instance)
  local now = util.iso()
  for _, task in ipairs(instance.tasks or {}) do
    if task.status == "READY" or task.status == "RESERVED" then
      task.status, task.lastChangedAt = "CANCELED", now
    end
  end
end

--- PATCH of the instance status; nil on success, else the catalog name of the failure.
-- SAP's definition says only part of this: CANCELED is final ("no further changes are
-- allowed"), SUSPENDED lasts "until a status change to RUNNING or CANCELED is requested",
-- and RUNNING retries an ERRONEOUS instance, also one suspended while ERRONEOUS. The rest is
-- [inferred]: a COMPLETED instance refuses changes as a CANCELED one does, both with the
-- operation's only 422 (instance.status.invalid); and a request for the status the instance
-- has already (suspend when SUSPENDED, resume when RUNNING) is accepted and changes nothing,
-- as the definition names no answer for it. sapwf sends a suspend again after a 500 as
-- idempotent, which relies on that.
function engine.set_status(instance, target, user)
  local current = instance.status
  if current == "COMPLETED" or current == "CANCELED" then return "status_invalid" end
  if target == "CANCELED" then
    instance.status, instance.completedAt = "CANCELED", util.iso()
    instance.waiting_message = nil
    close_open_tasks(instance)
    store.log(instance, { type = "WORKFLOW_CANCELED", userId = user })
  elseif target == "SUSPENDED" then
    if current ~= "SUSPENDED" then
      instance.suspended_from, instance.status = current, "SUSPENDED"
      store.log(instance, { type = "WORKFLOW_SUSPENDED", userId = user })
    end
  elseif target == "RUNNING" then
    if current == "SUSPENDED" then
      instance.status = "RUNNING"
      store.log(instance, { type = "WORKFLOW_RESUMED", userId = user })
      if instance.suspended_from == "ERRONEOUS" then
        instance.behaviour.on_retry(instance, engine)
      end
    elseif current == "ERRONEOUS" then
      instance.status = "RUNNING"
      store.log(instance, { type = "WORKFLOW_RESUMED", userId = user })
      instance.behaviour.on_retry(instance, engine)
    end
  else
    return "status_invalid"
  end
  return nil
end

--- Applies a checked task PATCH (see api/tasks.lua for the checks).
function engine.update_task(task, patch, user)
  local now = util.iso()
  local instance = task.instance
  if patch.processor ~= nil then
    if patch.processor == "" then
      task.processor, task.claimedAt, task.status = nil, nil, "READY"
      store.log(instance, { type = "USERTASK_RELEASED", activityId = task.activityId,
        subject = task.subject, taskId = task.id, userId = user })
    else
      task.processor, task.claimedAt, task.status = patch.processor, now, "RESERVED"
      store.log(instance, { type = "USERTASK_CLAIMED", activityId = task.activityId,
        subject = task.subject, taskId = task.id, userId = patch.processor })
    end
  end
  local changed = false
  for _, name in ipairs({ "subject", "description", "priority", "dueDate" }) do
    if patch[name] ~= nil then task[name], changed = patch[name], true end
  end
  if patch.recipientUsers ~= nil then
    task.recipientUsers, changed = util.split_list(patch.recipientUsers), true
  end
  if patch.recipientGroups ~= nil then
    task.recipientGroups, changed = util.split_list(patch.recipientGroups), true
  end
  if patch.attachments ~= nil then instance.attachments, changed = patch.attachments, true end
  if changed then
    store.log(instance, { type = "USERTASK_PATCHED_BY_ADMIN", activityId = task.activityId,
      subject = task.subject, taskId = task.id, userId = user })
  end
  task.lastChangedAt = now
  if patch.status == "COMPLETED" then
    if patch.context then engine.merge(instance.context, patch.context) end
    task.status, task.completedAt = "COMPLETED", now
    task.processor = task.processor or user
    task.decision = patch.decision
    store.log(instance, { type = "USERTASK_COMPLETED", activityId = task.activityId,
      subject = task.subject, taskId = task.id, userId = user, decision = patch.decision })
    shared.count("tasks_completed")
    instance.behaviour.on_task_completed(instance, task, engine)
  elseif patch.context then
    engine.merge(instance.context, patch.context)
  end
end

return engine
