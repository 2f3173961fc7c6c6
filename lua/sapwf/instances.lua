--- Workflow instances: start, list, read, context, status changes, roles, attachments, delete.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local type, pairs, format = type, pairs, string.format
local open, call, path_of, by_id = base.open, base.call, base.path, base.by_id

local methods = {}
local check_id, check_table, argerror = base.check_id, base.check_table, base.argerror
local encode = base.encode

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

--- Starts the latest version of a definition with a context (a table; default {}).
-- Returns the new instance (id, status, ...), meta. On failure err.outcome tells whether an
-- instance may exist anyway ("unknown": look it up before starting again).
function methods.start(self, definition_id, context)
  open(self, "start")
  -- The hot path of bulk starts: each check is called only to raise.
  if type(definition_id) ~= "string" then base.check_string("start", 1, definition_id) end
  if definition_id == "" then argerror("start", 1, "empty definition id") end
  local ctx_text = "{}"
  if context ~= nil then
    if type(context) ~= "table" then check_table("start", 2, context) end
    local text, err = encode(context, "context", START, START.path)
    if not text then return nil, err end
    ctx_text = text
  end
  local id_text, err = definition_text(definition_id)
  if not id_text then return nil, err end
  return call(self, START, START.path, "",
              '{"definitionId":' .. id_text .. ',"context":' .. ctx_text .. '}')
end

--- Instances matching q (no filter: RUNNING and ERRONEOUS ones): array, meta.
function methods.instances(self, q)
  open(self, "instances")
  return call(self, INSTANCES, INSTANCES.path, query.build(INSTANCES, q, "instances", 1))
end

--- One instance; opts.expand = "attributes" adds its custom attributes.
function methods.instance(self, id, opts)
  open(self, "instance")
  check_id("instance", 1, id)
  return call(self, INSTANCE, path_of(INSTANCE, id), query.build(INSTANCE, opts, "instance", 2))
end

--- The instance's context, the data its steps read and write: a table, meta.
-- @function methods.context
-- @string id the instance id
-- @treturn table the context
-- @treturn table meta
methods.context = by_id(CONTEXT, "context")

--- The instance's custom attributes: array of {id, label, value, type}, meta.
-- @function methods.attributes
-- @string id the instance id
-- @treturn table array of {id, label, value, type}
-- @treturn table meta
methods.attributes = by_id(ATTRIBUTES, "attributes")

--- The instance's execution log: array of events (started, task created, ...), meta.
-- @function methods.execution_logs
-- @string id the instance id
-- @treturn table array of events
-- @treturn table meta
methods.execution_logs = by_id(LOGS, "execution_logs")

--- The error messages of the instance's failed activities (why it is ERRONEOUS): array, meta.
-- @function methods.error_messages
-- @string id the instance id
-- @treturn table array of messages
-- @treturn table meta
methods.error_messages = by_id(ERRORS, "error_messages")

--- The instance's role assignments: {viewerUsers = {...}, adminGroups = {...}, ...}, meta.
-- @function methods.roles
-- @string id the instance id
-- @treturn table the role assignments
-- @treturn table meta
methods.roles = by_id(ROLES, "roles")

--- The instance's attachments: a table, meta.
-- @function methods.attachments
-- @string id the instance id
-- @treturn table the attachments
-- @treturn table meta
methods.attachments = by_id(ATTACHMENTS, "attachments")

-- PATCH/PUT of a JSON table; true, meta on success.
local function send_table(self, op, id, value, root)
  local path = path_of(op, id)
  local text, err = encode(value, root, op, path)
  if not text then return nil, err end
  return call(self, op, path, "", text)
end

--- Merges patch into the context (PATCH).
function methods.update_context(self, id, patch)
  open(self, "update_context")
  check_id("update_context", 1, id)
  check_table("update_context", 2, patch)
  return send_table(self, UPDATE_CONTEXT, id, patch, "patch")
end

--- Replaces the whole context (PUT).
function methods.replace_context(self, id, context)
  open(self, "replace_context")
  check_id("replace_context", 1, id)
  check_table("replace_context", 2, context)
  return send_table(self, REPLACE_CONTEXT, id, context, "context")
end

--- Replaces the attachments (PUT).
function methods.update_attachments(self, id, attachments)
  open(self, "update_attachments")
  check_id("update_attachments", 1, id)
  check_table("update_attachments", 2, attachments)
  return send_table(self, UPDATE_ATTACHMENTS, id, attachments, "attachments")
end

-- Status changes are asynchronous: the service answers 202 and the status follows.
--- Cancels the instance. true, meta once the service accepts it (202); the status follows.
-- @function methods.cancel
-- @string id the instance id
-- @treturn boolean true once the service accepted it (202)
-- @treturn table meta
methods.cancel = by_id(CANCEL, "cancel", '{"status":"CANCELED"}')

--- Suspends the instance until wf:resume. true, meta on 202; the status follows.
-- @function methods.suspend
-- @string id the instance id
-- @treturn boolean true once the service accepted it (202)
-- @treturn table meta
methods.suspend = by_id(SUSPEND, "suspend", '{"status":"SUSPENDED"}')

--- Resumes a suspended instance, or retries the failed activities of an erroneous one.
-- @function methods.resume
-- @string id the instance id
-- @treturn boolean true once the service accepted it (202)
-- @treturn table meta
methods.resume = by_id(RESUME, "resume", '{"status":"RUNNING"}')

local ROLE_NAMES = {
  viewerUsers = true, viewerGroups = true, adminUsers = true, adminGroups = true,
  contextViewerUsers = true, contextViewerGroups = true,
  contextAdminUsers = true, contextAdminGroups = true,
}


--- Changes the instance roles: {viewerUsers = {"a@x", "b@x"}, adminGroups = "G1", ...}.
-- A present role replaces the assignment; "" (or {}) clears it.
function methods.update_roles(self, id, roles)
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

--- Deletes instances by id. true, meta when done (200); {job =, location =}, meta when the
-- service deletes them in the background (202).
function methods.delete_instances(self, ids)
  open(self, "delete_instances")
  check_table("delete_instances", 1, ids)
  local n = #ids
  if n == 0 then argerror("delete_instances", 1, "empty list of ids") end
  local items = {}
  for i = 1, n do
    local id = ids[i]
    if type(id) ~= "string" or id == "" then
      argerror("delete_instances", 1, format("ids[%d]: non-empty string expected, got %s", i,
                                            type(id) == "string" and "\"\"" or type(id)))
    end
    items[i] = { id = id, deleted = true }
  end
  local text, err = encode(items, "ids", DELETE, DELETE.path)
  if not text then return nil, err end
  return call(self, DELETE, DELETE.path, "", text)
end

return { methods = methods }
