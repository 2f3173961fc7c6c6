-- The JSON shapes of the spec (definitions section) built from the store's records.
local json = require "sapwf.emulator.server.json"

local null, list = json.null, json.list
local ipairs, pairs, tostring = ipairs, pairs, tostring

local views = {}

local function attributes(items)
  local out = {}
  for i, item in ipairs(items) do
    out[i] = { id = item.id, label = item.label, value = item.value, type = item.type }
  end
  return list(out)
end
views.attributes = attributes

--- WorkflowInstance; with_attributes for $expand=attributes.
function views.instance(instance, with_attributes)
  return {
    id = instance.id,
    definitionId = instance.definitionId,
    definitionVersion = instance.definitionVersion,
    subject = instance.subject,
    status = instance.status,
    businessKey = instance.businessKey,
    startedAt = instance.startedAt,
    startedBy = instance.startedBy,
    completedAt = instance.completedAt or null,
    rootInstanceId = instance.id,
    parentInstanceId = null,
    applicationScope = "own",
    attributes = with_attributes and attributes(instance.attributes or {}) or nil,
  }
end

local function strings(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item end
  return list(out)
end

--- TaskInstance; with_attributes for $expand=attributes.
function views.task(task, with_attributes)
  return {
    id = task.id,
    activityId = task.activityId,
    definitionId = task.definitionId,
    subject = task.subject,
    description = task.description or null,
    status = task.status,
    priority = task.priority,
    processor = task.processor or null,
    recipientUsers = strings(task.recipientUsers),
    recipientGroups = strings(task.recipientGroups),
    createdAt = task.createdAt,
    createdBy = task.createdBy,
    claimedAt = task.claimedAt or null,
    completedAt = task.completedAt or null,
    lastChangedAt = task.lastChangedAt,
    dueDate = task.dueDate or null,
    workflowDefinitionId = task.workflowDefinitionId,
    workflowInstanceId = task.workflowInstanceId,
    applicationScope = "own",
    attributes = with_attributes and attributes(task.attributes) or nil,
  }
end

--- WorkflowDefinitionVersion (or WorkflowDefinition, with its jobs, when jobs is given).
function views.definition(definition, version, jobs)
  return {
    id = definition.id,
    name = definition.name,
    version = version.version,
    createdAt = version.createdAt,
    createdBy = definition.createdBy,
    applicationScope = "own",
    jobs = jobs and list(jobs) or nil,
  }
end

--- FormMetadata.
function views.form(form)
  local definitions = {}
  for i, item in ipairs(form.workflowDefinitions or {}) do definitions[i] = { id = item.id } end
  return {
    id = form.id, name = form.name, version = form.version, revision = form.revision,
    type = form.type, createdAt = form.createdAt, createdBy = form.createdBy,
    workflowDefinitions = list(definitions),
  }
end

--- WorkflowInstanceExecutionLog list of an instance.
function views.execution_logs(instance)
  local out = {}
  for i, entry in ipairs(instance.logs or {}) do
    local item = {}
    for name, value in pairs(entry) do item[name] = value end
    item.id = tostring(entry.id)
    item.referenceInstanceId = entry.referenceInstanceId or instance.id
    out[i] = item
  end
  return list(out)
end

--- WorkflowInstanceRoles.
views.ROLE_NAMES = { "viewerUsers", "viewerGroups", "adminUsers", "adminGroups",
  "contextViewerUsers", "contextViewerGroups", "contextAdminUsers", "contextAdminGroups" }

function views.roles(roles)
  local out = {}
  for _, name in ipairs(views.ROLE_NAMES) do out[name] = strings(roles and roles[name] or {}) end
  return out
end

return views
