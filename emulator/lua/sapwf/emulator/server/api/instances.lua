-- /v1/workflow-instances...: start, list, get, status, context, attachments, roles, logs.
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"
local respond = require "sapwf.emulator.server.respond"
local query = require "sapwf.emulator.server.query"
local views = require "sapwf.emulator.server.views"
local store = require "sapwf.emulator.server.store"
local engine = require "sapwf.emulator.server.engine"
local definitions = require "sapwf.emulator.server.api.definitions"
local spa = require "sapwf.emulator.server.spa"
local limits = require "sapwf.emulator.server.limits"

local type, ipairs, pairs, tonumber = type, ipairs, pairs, tonumber
local find, lower = string.find, string.lower
local list, is_object = json.list, json.is_object

local instances = {}

function instances.start(req)
  local body = req:json()
  if not is_object(body) then return respond.bad_request() end
  local id = body.definitionId
  -- the spec's 404 covers "the payload does not contain a definitionId property"
  if id == nil then return respond.fail("definition_not_found") end
  if type(id) ~= "string" or #id < 1 or #id > 64 then
    return respond.bad_request("The definitionId must be a string of 1 to 64 characters.")
  end
  local definition = store.definitions[id]
  if not definition or definition.undeploy_job then
    return respond.fail("definition_not_found")
  end
  local context = body.context
  if context == nil then
    context = {}
  elseif not is_object(context) then
    return respond.fail("context_invalid")
  end
  local attachments = body.attachments
  if attachments ~= nil and not is_object(attachments) then return respond.bad_request() end
  local spa_mode = req.config.spa
  if spa_mode then
    local message, details = spa.input_problem(definition, context)
    if message then return respond.fail("context_invalid", message, details) end
  end
  local instance = engine.start(definition, context, attachments, req.user)
  local view = views.instance(instance, false, views.viewer(req))
  -- SPA evaluates subject and business key after the start event's output mapping: the
  -- 201 shows them null, a later GET has them (workflow-api.md section 9).
  if spa_mode then view.subject, view.businessKey = json.null, json.null end
  -- the tenant's limits count the start's item and may not keep the instance (limits.lua)
  if req.config.limits then limits.started(req.config.limits, context, instance) end
  return 201, view
end

local ORDER_FIELDS = { id = true, definitionId = true, definitionVersion = true,
  startedAt = true, completedAt = true, startedBy = true, subject = true, businessKey = true }
local STATUSES = { RUNNING = true, ERRONEOUS = true, SUSPENDED = true, CANCELED = true,
  COMPLETED = true }
local DEFAULT_STATUSES = { RUNNING = true, ERRONEOUS = true }

local function numeric_version(value) return value and tonumber(value) end

-- Whether one of the (lower-cased) texts is in a field containsText searches.
local function contains_any(i, texts)
  local contains = util.contains
  for _, text in ipairs(texts) do
    if contains(i.id, text) or contains(i.definitionId, text) or contains(i.subject, text)
        or contains(i.startedBy, text) or contains(i.businessKey, text) then
      return true
    end
  end
  return false
end

-- The filter of GET /v1/workflow-instances as one predicate (nil when nothing is filtered).
local function instance_filter(args)
  local ids = query.values(args, "id")
  query.check_length(ids, "id", 36, 36)
  local definition_ids = query.values(args, "definitionId")
  query.check_length(definition_ids, "definitionId", 1, 64)
  local versions = query.values(args, "definitionVersion")
  local statuses = query.enum(args, "status", STATUSES, true)
  local started = query.date_filter(args, "startedAt", "startedFrom", "startedUpTo")
  local completed = query.date_filter(args, "completedAt", "completedFrom",
    "completedUpTo")
  local started_by = query.values(args, "startedBy")
  query.check_length(started_by, "startedBy", 0, 255)
  local subjects = query.values(args, "subject")
  query.check_length(subjects, "subject", 0, 255)
  local keys = query.values(args, "businessKey")
  query.check_length(keys, "businessKey", 0, 255)
  -- containsText may repeat here (OR): the instance list's description ORs a repeated
  -- parameter "unless noted otherwise", and notes nothing for it. The task list does
  -- ("must not use this parameter more than once"), so api/tasks.lua takes it once.
  local texts = query.values(args, "containsText")
  query.check_length(texts, "containsText", 0, 255)
  local roots = query.values(args, "rootInstanceId")
  query.check_length(roots, "rootInstanceId", 36, 36)
  local parents = query.values(args, "parentInstanceId")
  query.check_length(parents, "parentInstanceId", 0, 36)
  local attributes = query.attribute_filters(args)

  if not (ids or definition_ids or versions or statuses or started or completed or started_by
      or subjects or keys or texts or roots or parents or attributes) then
    return function(instance) return DEFAULT_STATUSES[instance.status] end
  end
  ids, definition_ids, versions = query.set(ids), query.set(definition_ids), query.set(versions)
  started_by, subjects, keys = query.set(started_by), query.set(subjects), query.set(keys)
  roots = query.set(roots)
  if texts then
    for n, text in ipairs(texts) do texts[n] = lower(text) end
  end
  return function(i)
    return (not ids or ids[i.id]) and (not definition_ids or definition_ids[i.definitionId])
      and (not versions or versions[i.definitionVersion]) and (not statuses or statuses[i.status])
      and (not started or started(i.startedAt)) and (not completed or completed(i.completedAt))
      and (not started_by or started_by[i.startedBy]) and (not subjects or subjects[i.subject])
      and (not keys or keys[i.businessKey]) and (not roots or roots[i.id])
      and not parents    -- every emulated instance is a root instance
      and (not texts or contains_any(i, texts))
      and (not attributes or query.attributes_match(attributes, i.attributes or {}))
      or false
  end
end

function instances.list(req)
  local args = req:args()
  local paging = query.paging(args)
  local expand = query.expand(args, "attributes")
  local field, descending = query.orderby(args, ORDER_FIELDS, "startedAt", true)
  local matches, viewer = views.scoped(req, instance_filter(args),
                                       function(i) return i.definitionId end)
  -- creation order is startedAt order
  local records = query.select(store.instances, matches, field, "startedAt",
    descending, field == "definitionVersion" and numeric_version or nil)
  local page, headers = query.page(records, paging, function(instance)
    return views.instance(instance, expand, viewer)
  end)
  return 200, list(page), headers
end

local function find_instance(req)
  local instance = store.instance_by_id[req.params.workflowInstanceId]
  if not instance then return nil, respond.fail("instance_not_found") end
  return instance
end

function instances.get(req)
  local expand = query.expand(req:args(), "attributes")
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, views.instance(instance, expand, views.viewer(req))
end

local STATUS_AUTHORITY = { CANCELED = "WORKFLOW_INSTANCE_CANCEL",
  SUSPENDED = "WORKFLOW_INSTANCE_SUSPEND", RUNNING = "WORKFLOW_INSTANCE_RETRY_RESUME" }
local ANY_STATUS_AUTHORITY = { "WORKFLOW_INSTANCE_CANCEL", "WORKFLOW_INSTANCE_SUSPEND",
  "WORKFLOW_INSTANCE_RETRY_RESUME" }

--- The authority of a status PATCH depends on the status asked for.
function instances.status_authority(req)
  local body = req:json()
  local status = is_object(body) and body.status
  return STATUS_AUTHORITY[status] or ANY_STATUS_AUTHORITY
end

function instances.update_status(req)
  local body = req:json()
  if not is_object(body) or type(body.status) ~= "string" then
    return respond.bad_request()
  end
  local instance, status, failure = find_instance(req)
  if not instance then return status, failure end
  if not STATUS_AUTHORITY[body.status] then return respond.fail("status_invalid") end
  local problem = engine.set_status(instance, body.status, req.user)
  if problem then return respond.fail(problem) end
  return 202
end

--- PATCH /v1/workflow-instances: [{"id":..., "deleted":true}], at most 10000 entries.
function instances.bulk_update(req)
  local body = req:json()
  if not json.is_array(body) then return respond.bad_request() end
  if #body > 10000 then
    return respond.bad_request("At most 10000 workflow instances can be changed in one call.")
  end
  for _, entry in ipairs(body) do
    if not is_object(entry) then return respond.bad_request() end
    if entry.id == nil then
      return 422, { error = { message = "The request body contains at least one entry"
        .. " without a workflow instance ID.", logId = util.uuid() } }
    end
    if type(entry.id) ~= "string" or #entry.id ~= 36
        or (entry.deleted ~= nil and type(entry.deleted) ~= "boolean") then
      return respond.bad_request()
    end
  end
  for _, entry in ipairs(body) do
    local instance = entry.deleted and store.instance_by_id[entry.id]
    if instance then store.remove_instance(instance) end
  end
  if #body > 1000 then   -- large requests run as a job, as the spec allows (202)
    local job = store.new_job(nil, { instancesInitial = #body, instancesLeft = 0 })
    return 202, nil, definitions.job_location(job)
  end
  return 200
end

function instances.attributes(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, views.attributes(instance.attributes or {})
end

function instances.get_context(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, json.encode_exact(instance.context)
end

local function context_change(req, apply)
  local body = req:json()
  if not is_object(body) then return respond.bad_request() end
  local instance, status, failure = find_instance(req)
  if not instance then return status, failure end
  apply(instance, body, req.user)
  return 204
end

function instances.patch_context(req)
  return context_change(req, engine.patch_context)
end

function instances.put_context(req)
  return context_change(req, engine.replace_context)
end

function instances.get_attachments(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, json.encode_exact(instance.attachments or {})
end

function instances.put_attachments(req)
  local body = req:json()
  if not is_object(body) then return respond.bad_request() end
  local instance, status, failure = find_instance(req)
  if not instance then return status, failure end
  instance.attachments = body
  return 204
end

function instances.error_messages(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, list(instance.errors or {})
end

function instances.execution_logs(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, views.execution_logs(instance)
end

function instances.get_roles(req)
  local instance, status, body = find_instance(req)
  if not instance then return status, body end
  return 200, views.roles(instance.roles)
end

local FINAL = { COMPLETED = true, CANCELED = true }

function instances.patch_roles(req)
  local body = req:json()
  if not is_object(body) then return respond.bad_request() end
  local instance, status, failure = find_instance(req)
  if not instance then return status, failure end
  local changes = {}
  for _, name in ipairs(views.ROLE_NAMES) do
    local value = body[name]
    if value ~= nil and value ~= json.null then
      if type(value) ~= "string" then return respond.bad_request() end
      local members = util.split_list(value)
      if #members > 100 then
        return respond.bad_request("At most 100 users or groups can be assigned to " .. name)
      end
      for _, member in ipairs(members) do
        if #member > 255 then return respond.bad_request() end
      end
      if FINAL[instance.status] and find(value, "${", 1, true) then
        return respond.fail("expressions_not_allowed")
      end
      changes[name] = members
    end
  end
  instance.roles = instance.roles or {}
  for name, members in pairs(changes) do instance.roles[name] = members end
  store.log(instance, { type = "WORKFLOW_ROLES_PATCHED_BY_ADMIN", userId = req.user })
  return 204
end

return instances
