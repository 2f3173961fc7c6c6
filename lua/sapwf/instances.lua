--- Workflow instances: start, list, read, context, status changes, roles, attachments, delete.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local type, pairs, format = type, pairs, string.format
local open, call, path_of, by_id = base.open, base.call, base.path, base.by_id
local by_id_with_table = base.by_id_with_table

local methods = {}
local check_id, check_table, argerror = base.check_id, base.check_table, base.argerror
local encode, encode_object = base.encode, base.encode_object

local START, INSTANCES, INSTANCE = ops.start, ops.instances, ops.instance
local CANCEL, SUSPEND, RESUME = ops.cancel, ops.suspend, ops.resume
local CONTEXT, UPDATE_CONTEXT, REPLACE_CONTEXT =
  ops.context, ops.update_context, ops.replace_context
local ATTRIBUTES, LOGS, ERRORS = ops.attributes, ops.execution_logs, ops.error_messages
local ROLES, UPDATE_ROLES = ops.roles, ops.update_roles
local ATTACHMENTS, UPDATE_ATTACHMENTS = ops.attachments, ops.update_attachments
local DELETE = ops.delete_instances

-- The JSON text of each definition id: a program starts a few definitions many times.
-- Bounded, so a program that makes up ids cannot grow it without end.
local id_texts, id_count = {}, 0
local function definition_text(definition_id)
  local text = id_texts[definition_id]
  if text then return text end
  local err
  text, err = encode(definition_id, "definitionId", START, START.path)
  if not text then return nil, err end
  if id_count >= 256 then id_texts, id_count = {}, 0 end
  id_texts[definition_id] = text
  id_count = id_count + 1
  return text
end

--- Starts the latest version of a workflow definition. A start is never sent twice by
-- itself: when its outcome is unknown (the connection broke after it was sent) the error
-- says so, and the instance may exist; look it up (wf:instances with definitionId and
-- startedFrom) before starting again.
-- @tparam string definition_id the definition to start
-- @tparam[opt] table context the start context (default {}): any JSON value table; use
-- sapwf.array and sapwf.object where an empty table must be [] or {}
-- @tparam[opt] table attachments the instance's attachments, bound at the start (SAP's
-- AttachmentsContext: `rootFolder`, `groups`), as wf:attachments returns them; not sent
-- when nil
-- @treturn table the new instance: id, definitionId, definitionVersion, status, startedAt, ...
-- @fails "forbidden" without WORKFLOW_INSTANCE_START; "not_found" for an unknown
-- definition; "invalid" for a context the definition refuses or a value that is not JSON;
-- "decode" for a 2xx whose body is not the new instance with its id (not JSON, null, []).
-- err.outcome is "unknown" when the start may have happened, "rejected" or "not_sent" when
-- it surely did not
function methods:start(definition_id, context, attachments)
  open(self, "start")
  -- The hot path of bulk starts: each check is called only to raise.
  if type(definition_id) ~= "string" then base.check_string("start", 1, definition_id) end
  if definition_id == "" then argerror("start", 1, "empty definition id") end
  if context ~= nil and type(context) ~= "table" then check_table("start", 2, context) end
  if attachments ~= nil and type(attachments) ~= "table" then
    check_table("start", 3, attachments)
  end
  local ctx_text, err = "{}", nil
  if context ~= nil then
    ctx_text, err = encode_object(context, "context", START, START.path)
    if not ctx_text then return nil, err end
  end
  local id_text
  id_text, err = definition_text(definition_id)
  if not id_text then return nil, err end
  local tail = "}"
  if attachments ~= nil then
    local att_text
    att_text, err = encode_object(attachments, "attachments", START, START.path)
    if not att_text then return nil, err end
    tail = ',"attachments":' .. att_text .. '}'
  end
  return call(self, START, START.path, "",
              '{"definitionId":' .. id_text .. ',"context":' .. ctx_text .. tail)
end

--- The workflow instances matching q; with no filter at all the service returns the
-- RUNNING and ERRONEOUS ones (SAP: "If no parameters are specified"; sapwf, its emulator
-- and its command line take any filter to lift that, which no source confirms: give
-- `status` to be sure). At most one page: see wf:each_instance for all matches.
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "startedAt desc"), `inlinecount` (true: meta.total), `expand`; the filters
-- `businessKey`, `completedAt`, `completedFrom`, `completedUpTo`, `containsText`,
-- `definitionId`, `definitionVersion`, `id`, `parentInstanceId`, `rootInstanceId`,
-- `startedAt`, `startedBy`, `startedFrom`, `startedUpTo`, `status`, `subject` (an array
-- value repeats a filter: the service combines them with OR). An unknown name raises.
-- @treturn table array of instances: id, definitionId, status, startedAt, businessKey, ...
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET
function methods:instances(q)
  open(self, "instances")
  return call(self, INSTANCES, INSTANCES.path, query.build(INSTANCES, q, "instances", 1))
end

--- One workflow instance.
-- @tparam string id the workflow instance id
-- @tparam[opt] table opts `expand = "attributes"` adds its custom attributes
-- @treturn table the instance: id, definitionId, status, startedAt, ...
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET; "not_found" for an unknown id
function methods:instance(id, opts)
  open(self, "instance")
  check_id("instance", 1, id)
  return call(self, INSTANCE, path_of(INSTANCE, id), query.build(INSTANCE, opts, "instance", 2))
end

--- The instance's context: the data its steps read and write.
-- @function methods:context
-- @tparam string id the workflow instance id
-- @treturn table the context
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_CONTEXT; "not_found" for an unknown id
methods.context = by_id(CONTEXT, "context")

--- The instance's custom attributes.
-- @function methods:attributes
-- @tparam string id the workflow instance id
-- @treturn table array of {id, label, value, type}
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_ATTRIBUTES; "not_found" for an unknown
-- id
methods.attributes = by_id(ATTRIBUTES, "attributes")

--- The instance's execution log: one event per step (started, task created, ...).
-- @function methods:execution_logs
-- @tparam string id the workflow instance id
-- @treturn table array of events
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_EXECUTION_LOGS; "not_found" for an
-- unknown id
methods.execution_logs = by_id(LOGS, "execution_logs")

--- The error messages of the instance's failed activities: why it is ERRONEOUS.
-- @function methods:error_messages
-- @tparam string id the workflow instance id
-- @treturn table array of messages
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_ERROR_MESSAGES; "not_found" for an
-- unknown id
methods.error_messages = by_id(ERRORS, "error_messages")

--- The instance's role assignments.
-- @function methods:roles
-- @tparam string id the workflow instance id
-- @treturn table {viewerUsers =, viewerGroups =, adminUsers =, adminGroups =, ...}
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_ROLES; "not_found" for an unknown id
methods.roles = by_id(ROLES, "roles")

--- The instance's attachments.
-- @function methods:attachments
-- @tparam string id the workflow instance id
-- @treturn table the attachments
-- @fails "forbidden" without WORKFLOW_INSTANCE_GET_ATTACHMENTS; "not_found" for an unknown
-- id
methods.attachments = by_id(ATTACHMENTS, "attachments")

-- PATCH of a JSON table (update_roles, after its own checks); true, meta on success.
local function send_table(self, op, id, value, root)
  local path = path_of(op, id)
  local text, err = encode(value, root, op, path)
  if not text then return nil, err end
  return call(self, op, path, "", text)
end

--- Merges patch into the instance's context (PATCH): the fields given replace theirs.
-- @function methods:update_context
-- @tparam string id the workflow instance id
-- @tparam table patch the fields to set
-- @treturn boolean true
-- @fails "forbidden" without WORKFLOW_INSTANCE_UPDATE_CONTEXT; "not_found" for an unknown
-- id; "invalid" for a value that is not JSON
methods.update_context = by_id_with_table(UPDATE_CONTEXT, "update_context", "patch")

--- Replaces the instance's whole context (PUT).
-- @function methods:replace_context
-- @tparam string id the workflow instance id
-- @tparam table context the new context
-- @treturn boolean true
-- @fails "forbidden" without WORKFLOW_INSTANCE_UPDATE_CONTEXT; "not_found" for an unknown
-- id; "invalid" for a value that is not JSON
methods.replace_context = by_id_with_table(REPLACE_CONTEXT, "replace_context", "context")

--- Replaces the instance's attachments (PUT).
-- @function methods:update_attachments
-- @tparam string id the workflow instance id
-- @tparam table attachments the attachments, as wf:attachments returns them
-- @treturn boolean true
-- @fails "forbidden" without WORKFLOW_INSTANCE_UPDATE_ATTACHMENTS; "not_found" for an
-- unknown id
methods.update_attachments = by_id_with_table(UPDATE_ATTACHMENTS, "update_attachments",
                                              "attachments")

-- Status changes are asynchronous: the service answers 202 and the status follows.
--
-- cancel and suspend are sent again after an attempt that may have acted (a 500, a
-- connection lost after sending: send.lua's IDEMPOTENT_OPS). That second sending may meet
-- the service's 422 (CANCELED is final; SAP names no answer for suspending a SUSPENDED
-- instance, so it may be this too) or its 409 while it still processes the first attempt.
-- Then the instance is read, and when it has the status asked for, the change happened:
-- true and the read's meta (every method returns value, meta).
local function status_change(op, fname, status)
  local body = '{"status":"' .. status .. '"}'
  return function(self, id)
    open(self, fname)
    base.check_id(fname, 1, id)
    local ok, err = call(self, op, path_of(op, id), "", body)
    if ok == nil and (err.status == 422 or err.status == 409) and err.outcome == "unknown" then
      local instance, meta = self:instance(id)
      if instance and instance.status == status then return true, meta end
    end
    return ok, err
  end
end

--- Cancels the instance. The service accepts it (202) and the status follows. CANCELED is
-- final. A cancel sent again after an attempt that may have acted, and refused (422, 409),
-- reads the instance: when it is CANCELED, the cancel happened.
-- @function methods:cancel
-- @tparam string id the workflow instance id
-- @treturn boolean true once the service accepted it
-- @fails "forbidden" without WORKFLOW_INSTANCE_CANCEL; "not_found" for an unknown id;
-- "invalid" (422) when the status does not allow it (COMPLETED or CANCELED); "conflict"
-- (409) while another activity of the instance runs: try again later
methods.cancel = status_change(CANCEL, "cancel", "CANCELED")

--- Suspends the instance until wf:resume. The service accepts it (202) and the status follows.
-- A suspend sent again after an attempt that may have acted, and refused (422, 409), reads
-- the instance: when it is SUSPENDED, the suspend happened.
-- @function methods:suspend
-- @tparam string id the workflow instance id
-- @treturn boolean true once the service accepted it
-- @fails "forbidden" without WORKFLOW_INSTANCE_SUSPEND; "not_found" for an unknown id;
-- "invalid" (422) when the status does not allow it; "conflict" (409) while another
-- activity of the instance runs: try again later
methods.suspend = status_change(SUSPEND, "suspend", "SUSPENDED")

--- Resumes a suspended instance, or retries the failed activities of an erroneous one. The
-- service accepts it (202) and the status follows.
-- @function methods:resume
-- @tparam string id the workflow instance id
-- @treturn boolean true once the service accepted it
-- @fails "forbidden" without WORKFLOW_INSTANCE_RETRY_RESUME; "not_found" for an unknown id;
-- "invalid" (422) when the status does not allow it; "conflict" (409) while another
-- activity of the instance runs: try again later
methods.resume = by_id(RESUME, "resume", '{"status":"RUNNING"}')

local ROLE_NAMES = {
  viewerUsers = true, viewerGroups = true, adminUsers = true, adminGroups = true,
  contextViewerUsers = true, contextViewerGroups = true,
  contextAdminUsers = true, contextAdminGroups = true,
}


--- Changes the instance's role assignments. A role given replaces its assignment; "" (or {})
-- clears it; roles not given stay.
-- @tparam string id the workflow instance id
-- @tparam table roles any of viewerUsers, viewerGroups, adminUsers, adminGroups,
-- contextViewerUsers, contextViewerGroups, contextAdminUsers, contextAdminGroups: each a
-- string of comma-separated names or an array of names (e.g. {viewerUsers = {"a@x", "b@x"}})
-- @treturn boolean true
-- @fails "forbidden" without WORKFLOW_INSTANCE_UPDATE_ROLES; "not_found" for an unknown id
function methods:update_roles(id, roles)
  open(self, "update_roles")
  check_id("update_roles", 1, id)
  check_table("update_roles", 2, roles)
  -- A number or boolean would reach the service and come back as a 400: a wrong argument
  -- type, so it raises like the others (join_lists checks names and list items).
  for name, value in pairs(roles) do
    local got = type(value)
    if ROLE_NAMES[name] and got ~= "string" and got ~= "table" then
      argerror("update_roles", 2, format("%s: string or list of strings expected, got %s",
                                         name, got))
    end
  end
  local body = base.join_lists("update_roles", 2, roles, ROLE_NAMES, ROLE_NAMES)
  return send_table(self, UPDATE_ROLES, id, body, "roles")
end

-- SAP's limits on one bulk delete (DeleteWorkflowInstancesPayload): maxItems, and the
-- length of each id (minLength = maxLength).
local MAX_DELETE, ID_LENGTH = 10000, 36

--- Deletes workflow instances.
-- @tparam table ids array of instance ids, 36 characters each, at most 10000 (SAP's limits
-- for one call: more, or another id, raises, as the service would refuse the whole call;
-- so does a set or a table with other keys: those ids would not be deleted); an empty one
-- deletes nothing and sends nothing (the service answers an empty list 200 too), so
-- "delete whatever the query found" needs no case of its own
-- @treturn boolean|table true when the service deleted them at once (200), or `{job =,
-- location =}` when it deletes them in the background (202): follow it with wf:job
-- @fails "forbidden" without WORKFLOW_INSTANCES_UPDATE
function methods:delete_instances(ids)
  open(self, "delete_instances")
  check_table("delete_instances", 1, ids)
  local n = base.check_array("delete_instances", 1, ids, nil, 2)
  if n == 0 then return true, {} end                   -- meta without status: nothing sent
  if n > MAX_DELETE then
    argerror("delete_instances", 1, format("%d ids: at most %d in one call (SAP's limit); "
                                           .. "split the list", n, MAX_DELETE))
  end
  local items = {}
  for i = 1, n do
    local id = ids[i]
    if type(id) ~= "string" or id == "" then
      argerror("delete_instances", 1, format("ids[%d]: non-empty string expected, got %s", i,
                                            type(id) == "string" and "\"\"" or type(id)))
    elseif #id ~= ID_LENGTH then
      argerror("delete_instances", 1, format("ids[%d]: an instance id has %d characters, "
                                            .. "got %d", i, ID_LENGTH, #id))
    end
    items[i] = { id = id, deleted = true }
  end
  local text, err = encode(items, "ids", DELETE, DELETE.path)
  if not text then return nil, err end
  return call(self, DELETE, DELETE.path, "", text)
end

return { methods = methods }
