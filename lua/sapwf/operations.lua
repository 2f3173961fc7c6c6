-- Every Workflow API operation sapwf knows, in one table: the single source for the 403
-- authority and hint, for query-name validation, for wf:request()'s authority lookup, for
-- the README table and for the spec-conformance test (spec/03), which checks method, path,
-- query names, success statuses and authority against SAP's API definition.
--
-- Fields: name; method; path (the spec's template); authority (the scope a technical client
-- needs; `inferred` when the spec states none); query (the spec's query names; `attributes`
-- allows attributes.<id>); success (statuses the spec lists); body ("json" a JSON answer,
-- "none" no body, "job" a Location header naming a job, "raw" not JSON); answer (with
-- body "json": the JSON type of the success answer's schema, "object" or "array"; spec/03
-- checks it); answer_id (true: the answer object must hold an `id` string, the only handle
-- on what the call made: a start's new instance); accept (the Accept header when the answer
-- is not JSON); once (query names the service takes once, beyond those taken_once names);
-- no_comma (query names whose values SAP's definition forbids commas in: `^[^,]*$`);
-- lua (the call). Made below: query_names, query_once, query_no_comma (sets), the path's
-- params and pieces, its pattern.
local format, gsub, gmatch, find = string.format, string.gsub, string.gmatch, string.find
local sort = table.sort

local PAGING = { "$skip", "$top", "$inlinecount" }
local function with_paging(...)
  local list = { ... }
  for _, name in ipairs(PAGING) do list[#list + 1] = name end
  return list
end

local list = {
  -- Workflow definitions
  { name = "definitions", method = "GET", path = "/v1/workflow-definitions",
    authority = "WORKFLOW_DEFINITION_GET", query = with_paging("$orderby"),
    success = { 200 }, body = "json", answer = "array", lua = "wf:definitions(q)" },
  { name = "definition", method = "GET", path = "/v1/workflow-definitions/{definitionId}",
    authority = "WORKFLOW_DEFINITION_GET", success = { 200 }, body = "json", answer = "object",
    lua = "wf:definition(id)" },
  { name = "undeploy", method = "DELETE", path = "/v1/workflow-definitions/{definitionId}",
    authority = "WORKFLOW_DEFINITION_UNDEPLOY", query = { "cascade" },
    success = { 202, 303 }, body = "job", lua = "wf:undeploy(id, {cascade = true})" },
  { name = "definition_versions", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/versions",
    authority = "WORKFLOW_DEFINITION_GET", query = with_paging("$orderby"),
    success = { 200 }, body = "json", answer = "array", lua = "wf:definition_versions(id, q)" },
  { name = "definition_version", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/versions/{versionNumber}",
    authority = "WORKFLOW_DEFINITION_GET", success = { 200 }, body = "json", answer = "object",
    lua = "wf:definition_version(id, version)" },
  { name = "definition_model", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/model",
    authority = "WORKFLOW_DEFINITION_GET_MODEL", success = { 200 }, body = "json",
    answer = "object", lua = "wf:definition_model(id)" },
  { name = "definition_version_model", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/versions/{versionNumber}/model",
    authority = "WORKFLOW_DEFINITION_GET_MODEL", success = { 200 }, body = "json",
    answer = "object", lua = "wf:definition_model(id, version)" },
  { name = "sample_context", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/sample-contexts/default-start-context",
    authority = "WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT", success = { 200 }, body = "json",
    answer = "object", lua = "wf:sample_context(id)" },
  { name = "definition_version_sample_context", method = "GET",
    path = "/v1/workflow-definitions/{definitionId}/versions/{versionNumber}"
        .. "/sample-contexts/default-start-context",
    authority = "WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT", success = { 200 }, body = "json",
    answer = "object", lua = "wf:sample_context(id, version)" },

  -- Workflow instances
  { name = "instances", method = "GET", path = "/v1/workflow-instances",
    authority = "WORKFLOW_INSTANCE_GET",
    query = with_paging("$orderby", "$expand", "id", "definitionId", "definitionVersion",
      "status", "startedAt", "startedFrom", "startedUpTo", "completedAt", "completedFrom",
      "completedUpTo", "startedBy", "subject", "containsText", "businessKey",
      "rootInstanceId", "parentInstanceId"),
    attributes = true, success = { 200 }, body = "json", answer = "array",
    lua = "wf:instances(q)" },
  { name = "start", method = "POST", path = "/v1/workflow-instances",
    authority = "WORKFLOW_INSTANCE_START", success = { 201 }, body = "json", answer = "object",
    answer_id = true, lua = "wf:start(definition_id, context, attachments)" },
  { name = "delete_instances", method = "PATCH", path = "/v1/workflow-instances",
    authority = "WORKFLOW_INSTANCES_UPDATE", success = { 200, 202 }, body = "job",
    lua = "wf:delete_instances(ids)" },
  { name = "instance", method = "GET", path = "/v1/workflow-instances/{workflowInstanceId}",
    authority = "WORKFLOW_INSTANCE_GET", query = { "$expand" }, success = { 200 },
    body = "json", answer = "object", lua = "wf:instance(id, {expand = \"attributes\"})" },
  -- One PATCH, three authorities: which status needs which scope is read from the names.
  { name = "cancel", method = "PATCH", path = "/v1/workflow-instances/{workflowInstanceId}",
    authority = "WORKFLOW_INSTANCE_CANCEL", success = { 202 }, body = "none",
    lua = "wf:cancel(id)" },
  { name = "suspend", method = "PATCH", path = "/v1/workflow-instances/{workflowInstanceId}",
    authority = "WORKFLOW_INSTANCE_SUSPEND", success = { 202 }, body = "none",
    lua = "wf:suspend(id)" },
  { name = "resume", method = "PATCH", path = "/v1/workflow-instances/{workflowInstanceId}",
    authority = "WORKFLOW_INSTANCE_RETRY_RESUME", success = { 202 }, body = "none",
    lua = "wf:resume(id)" },
  { name = "attributes", method = "GET",
    path = "/v1/workflow-instances/{workflowInstanceId}/attributes",
    authority = "WORKFLOW_INSTANCE_GET_ATTRIBUTES", success = { 200 }, body = "json",
    answer = "array", lua = "wf:attributes(id)" },
  { name = "context", method = "GET",
    path = "/v1/workflow-instances/{workflowInstanceId}/context",
    authority = "WORKFLOW_INSTANCE_GET_CONTEXT", success = { 200 }, body = "json",
    answer = "object", lua = "wf:context(id)" },
  { name = "update_context", method = "PATCH",
    path = "/v1/workflow-instances/{workflowInstanceId}/context",
    authority = "WORKFLOW_INSTANCE_UPDATE_CONTEXT", success = { 204 }, body = "none",
    lua = "wf:update_context(id, patch)" },
  { name = "replace_context", method = "PUT",
    path = "/v1/workflow-instances/{workflowInstanceId}/context",
    authority = "WORKFLOW_INSTANCE_UPDATE_CONTEXT", success = { 204 }, body = "none",
    lua = "wf:replace_context(id, context)" },
  { name = "attachments", method = "GET",
    path = "/v1/workflow-instances/{workflowInstanceId}/attachments",
    authority = "WORKFLOW_INSTANCE_GET_ATTACHMENTS", success = { 200 }, body = "json",
    answer = "object", lua = "wf:attachments(id)" },
  { name = "update_attachments", method = "PUT",
    path = "/v1/workflow-instances/{workflowInstanceId}/attachments",
    authority = "WORKFLOW_INSTANCE_UPDATE_ATTACHMENTS", success = { 204 }, body = "none",
    lua = "wf:update_attachments(id, attachments)" },
  { name = "error_messages", method = "GET",
    path = "/v1/workflow-instances/{workflowInstanceId}/error-messages",
    authority = "WORKFLOW_INSTANCE_GET_ERROR_MESSAGES", success = { 200 }, body = "json",
    answer = "array", lua = "wf:error_messages(id)" },
  { name = "execution_logs", method = "GET",
    path = "/v1/workflow-instances/{workflowInstanceId}/execution-logs",
    authority = "WORKFLOW_INSTANCE_GET_EXECUTION_LOGS", success = { 200 }, body = "json",
    answer = "array", lua = "wf:execution_logs(id)" },
  { name = "roles", method = "GET", path = "/v1/workflow-instances/{workflowInstanceId}/roles",
    authority = "WORKFLOW_INSTANCE_GET_ROLES", success = { 200 }, body = "json",
    answer = "object", lua = "wf:roles(id)" },
  { name = "update_roles", method = "PATCH",
    path = "/v1/workflow-instances/{workflowInstanceId}/roles",
    authority = "WORKFLOW_INSTANCE_UPDATE_ROLES", success = { 204 }, body = "none",
    lua = "wf:update_roles(id, roles)" },

  -- User task instances
  { name = "tasks", method = "GET", path = "/v1/task-instances", authority = "TASK_GET",
    query = with_paging("$orderby", "$expand", "workflowInstanceId", "workflowDefinitionId",
      "processor", "id", "activityId", "description", "subject", "createdAt", "createdFrom",
      "createdUpTo", "claimedAt", "claimedFrom", "claimedUpTo", "completedAt",
      "completedFrom", "completedUpTo", "lastChangedAt", "lastChangedFrom",
      "lastChangedUpTo", "dueDate", "dueDateFrom", "dueDateUpTo", "priority", "status",
      "recipientUsers", "recipientGroups", "containsText", "definitionId"),
    once = { "containsText" }, no_comma = { "subject", "description" }, attributes = true,
    success = { 200 }, body = "json", answer = "array", lua = "wf:tasks(q)" },
  { name = "task", method = "GET", path = "/v1/task-instances/{taskInstanceId}",
    authority = "TASK_GET", query = { "$expand" }, success = { 200 }, body = "json",
    answer = "object", lua = "wf:task(id, {expand = \"attributes\"})" },
  -- One PATCH, two authorities: completing needs TASK_COMPLETE, other changes TASK_UPDATE.
  { name = "complete_task", method = "PATCH", path = "/v1/task-instances/{taskInstanceId}",
    authority = "TASK_COMPLETE", success = { 204 }, body = "none",
    lua = "wf:complete_task(id, context)" },
  { name = "update_task", method = "PATCH", path = "/v1/task-instances/{taskInstanceId}",
    authority = "TASK_UPDATE", success = { 204 }, body = "none",
    lua = "wf:update_task(id, fields)" },
  { name = "task_attributes", method = "GET",
    path = "/v1/task-instances/{taskInstanceId}/attributes",
    authority = "TASK_GET_ATTRIBUTES", success = { 200 }, body = "json", answer = "array",
    lua = "wf:task_attributes(id)" },
  { name = "task_context", method = "GET", path = "/v1/task-instances/{taskInstanceId}/context",
    authority = "TASK_GET_CONTEXT", success = { 200 }, body = "json", answer = "object",
    lua = "wf:task_context(id)" },
  { name = "task_attachments", method = "GET",
    path = "/v1/task-instances/{taskInstanceId}/attachments",
    authority = "TASK_GET_ATTACHMENTS", success = { 200 }, body = "json", answer = "object",
    lua = "wf:task_attachments(id)" },
  { name = "task_form", method = "GET", path = "/v1/task-instances/{taskInstanceId}/form",
    authority = "TASK_GET_FORM", success = { 200 }, body = "json",
    answer = "object", lua = "wf:task_form(id)" },
  { name = "task_form_model", method = "GET",
    path = "/v1/task-instances/{taskInstanceId}/form/model",
    authority = "TASK_GET_FORM_MODEL", success = { 200 }, body = "json", answer = "object",
    lua = "wf:task_form_model(id)" },
  -- The spec names roles but no scope here; default tokens carry TASK_DEFINITION_GET.
  { name = "task_definitions", method = "GET", path = "/v1/task-definitions",
    authority = "TASK_DEFINITION_GET", inferred = true, query = with_paging("$expand"),
    success = { 200 }, body = "json", answer = "array", lua = "wf:task_definitions(q)" },

  -- Forms
  { name = "forms", method = "GET", path = "/v1/forms", authority = "FORM_DEFINITION_GET",
    query = with_paging("type"), once = { "type" }, success = { 200 }, body = "json",
    answer = "array", lua = "wf:forms(q)" },
  { name = "delete_form", method = "DELETE", path = "/v1/forms/{formId}",
    authority = "FORM_DEFINITION_UNDEPLOY", success = { 204 }, body = "none",
    lua = "wf:request(\"DELETE\", \"/v1/forms/\" .. id)" },
  { name = "form_revision_model", method = "GET",
    path = "/v1/forms/{formId}/revisions/{revisionId}/model",
    authority = "FORM_DEFINITION_GET_MODEL", success = { 200 }, body = "json",
    answer = "object", lua = "wf:request(\"GET\", path)" },
  { name = "form_version_model", method = "GET",
    path = "/v1/forms/{formId}/versions/{versionNumber}/model",
    authority = "FORM_DEFINITION_GET_MODEL", success = { 200 }, body = "json",
    answer = "object", lua = "wf:request(\"GET\", path)" },

  -- Messages, jobs, tenant data
  { name = "send_message", method = "POST", path = "/v1/messages/",
    authority = "MESSAGE_SEND", success = { 200 }, body = "json", answer = "array",
    lua = "wf:send_message{...}" },
  { name = "job", method = "GET", path = "/v1/jobs/{jobId}", authority = "JOB_STATUS_GET",
    success = { 200 }, body = "json", answer = "object", lua = "wf:job(id)" },
  { name = "export", method = "GET", path = "/v1/export", authority = "DATA_EXPORT",
    success = { 200 }, body = "raw", accept = "application/zip", lua = "wf:export(path)" },
  { name = "purge", method = "POST", path = "/v1/purge", authority = "DATA_PURGE",
    success = { 202, 303 }, body = "job", lua = "wf:request(\"POST\", \"/v1/purge\")" },
}

-- Every authority a workflow service instance can grant: those of the operations above plus
-- the deploy authorities that default tokens carry (content deployment is not in this API).
local EXTRA_AUTHORITIES = {
  "WORKFLOW_DEFINITION_DEPLOY", "FORM_DEFINITION_DEPLOY", "PROCESS_TEMPLATE_DEPLOY",
  "PROCESS_VARIANT_DEPLOY",
}

local operations = { list = list, by_name = {} }

-- Query names a list cannot go in: a list value is sent as the name repeated, which the
-- service ORs for a filter, but not for these: the $ options, a time range's bounds (two
-- lower bounds are no range) and a flag. The table's `once` adds those SAP's definition or
-- its service take once (the task list's containsText: "must not use this parameter more
-- than once"; the form list's type, an enum).
local function taken_once(name)
  return find(name, "^%$") ~= nil or find(name, "%lFrom$") ~= nil
    or find(name, "%lUpTo$") ~= nil or name == "cascade"
end

-- Per-operation data computed once: the query-name set, the success set, the number of path
-- parameters, the literal pieces between them, and a Lua pattern that matches a concrete
-- path (for wf:request's authority lookup).
for _, op in ipairs(list) do
  operations.by_name[op.name] = op
  op.query_names, op.query_once = {}, {}
  for _, q in ipairs(op.query or {}) do
    op.query_names[q] = true
    op.query_once[q] = taken_once(q) or nil
  end
  for _, q in ipairs(op.once or {}) do op.query_once[q] = true end
  op.query_no_comma = {}
  for _, q in ipairs(op.no_comma or {}) do op.query_no_comma[q] = true end
  op.success_set = {}
  for _, s in ipairs(op.success) do op.success_set[s] = true end
  op.params, op.pieces = {}, {}
  local pos = 1
  for s, param, e in gmatch(op.path, "(){([%w]+)}()") do
    op.pieces[#op.pieces + 1] = op.path:sub(pos, s - 1)
    op.params[#op.params + 1] = param
    pos = e
  end
  op.pieces[#op.pieces + 1] = op.path:sub(pos)
  local pattern = gsub(op.path, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  op.pattern = "^" .. gsub(pattern, "{[%w]+}", "[^/]+") .. "$"
end

do
  local set, all = {}, {}
  for _, op in ipairs(list) do set[op.authority] = true end
  for _, a in ipairs(EXTRA_AUTHORITIES) do set[a] = true end
  for a in pairs(set) do all[#all + 1] = a end
  sort(all)
  operations.authorities = all
end

--- The operations a method and a concrete path (no query) address: usually one, none for a
-- path the table does not know, several where one path serves several operations (the
-- instance and the task PATCH, told apart by their body).
function operations.match(method, path)
  local found = {}
  for _, op in ipairs(list) do
    if op.method == method and find(path, op.pattern) then found[#found + 1] = op end
  end
  return found
end

--- "GET /v1/workflow-instances/{workflowInstanceId}" for messages and docs.
function operations.describe(op)
  return format("%s %s", op.method, op.path)
end

return operations
