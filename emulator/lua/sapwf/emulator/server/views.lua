-- The JSON shapes of the spec (definitions section) built from the store's records.
local json = require "sapwf.emulator.server.json"
local defaults = require "sapwf.emulator.defaults"

local null, list = json.null, json.list
local ipairs, pairs, tostring, next = ipairs, pairs, tostring, next

local views = {}

local DEFAULT_SCOPE = defaults.application_scope

-- Application scopes (workflow-api.md 6.1, [inferred] beyond the field's description):
-- a definition belongs to one (config.definition_scopes, else the default scope), its
-- instances and tasks with it. A caller (a client, i.e. a service instance) has a scope and
-- a defaultCollectionQueryFilter: "own" lists only its scope's entities, "shared" also the
-- shared ones. GET by id is not filtered. applicationScope shows "own", "shared" or the
-- name of another scope.

--- What the caller of req may list and how scopes show to it: nil while every entity is
-- the caller's own (the default scope and no scope set on a definition: nothing to filter).
function views.viewer(req)
  local config = req.config
  local client = config.clients[req.user]
  local own = client and client.scope or DEFAULT_SCOPE
  local scopes = config.definition_scopes
  if own == DEFAULT_SCOPE and next(scopes) == nil then return nil end
  return { own = own, filter = client and client.query_filter or defaults.query_filter,
    scopes = scopes }
end

--- The scope an entity of the definition definition_id shows to viewer.
local function scope_of(viewer, definition_id)
  if not viewer then return "own" end
  local scope = viewer.scopes[definition_id] or DEFAULT_SCOPE
  if scope == viewer.own then return "own" end
  return scope
end
views.scope_of = scope_of

--- Whether a collection GET by viewer lists the entities of definition_id.
function views.listed(viewer, definition_id)
  if not viewer then return true end
  local scope = viewer.scopes[definition_id] or DEFAULT_SCOPE
  return scope == viewer.own or (scope == "shared" and viewer.filter == "shared")
end

--- A collection's filter narrowed to what the caller's application scope lists:
-- matches(x) and the definition of x (definition_of(x)) listed; and the viewer.
function views.scoped(req, matches, definition_of)
  local viewer = views.viewer(req)
  if not viewer then return matches, nil end
  local listed = views.listed
  return function(x) return listed(viewer, definition_of(x)) and matches(x) end, viewer
end

local function attributes(items)
  local out = {}
  for i, item in ipairs(items) do
    out[i] = { id = item.id, label = item.label, value = item.value, type = item.type }
  end
  return list(out)
end
views.attributes = attributes

--- WorkflowInstance; with_attributes for $expand=attributes; viewer from views.viewer.
function views.instance(instance, with_attributes, viewer)
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
    applicationScope = scope_of(viewer, instance.definitionId),
    attributes = with_attributes and attributes(instance.attributes or {}) or nil,
  }
end

local function strings(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item end
  return list(out)
end

--- TaskInstance; with_attributes for $expand=attributes; viewer from views.viewer.
function views.task(task, with_attributes, viewer)
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
    applicationScope = scope_of(viewer, task.workflowDefinitionId),
    attributes = with_attributes and attributes(task.attributes) or nil,
  }
end

--- WorkflowDefinitionVersion (or WorkflowDefinition, with its jobs, when jobs is given);
-- viewer from views.viewer.
function views.definition(definition, version, jobs, viewer)
  return {
    id = definition.id,
    name = definition.name,
    version = version.version,
    createdAt = version.createdAt,
    createdBy = definition.createdBy,
    applicationScope = scope_of(viewer, definition.id),
    jobs = jobs and list(jobs) or nil,
  }
end

--- FormMetadata. workflowDefinitions only for a start form: the definition describes it as
-- "A list of workflow definitions in case the form definition version is of type 'start'",
-- and its examples of task forms have none.
function views.form(form)
  local definitions
  if form.type == "start" then
    definitions = {}
    for i, item in ipairs(form.workflowDefinitions or {}) do
      definitions[i] = { id = item.id }
    end
    definitions = list(definitions)
  end
  return {
    id = form.id, name = form.name, version = form.version, revision = form.revision,
    type = form.type, createdAt = form.createdAt, createdBy = form.createdBy,
    workflowDefinitions = definitions,
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
