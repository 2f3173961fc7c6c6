-- The 41 operations of the Workflow API v1 for Cloud Foundry (SAP_CP_Workflow_CF.yaml), with
-- the authority a client-credentials token needs (workflow-api.md 1.1 and 6.2).
--
-- Fields: method, pattern, authority (a name, or a function of the request giving a name or
-- a list of names of which one suffices), handler, and for faults and bad path parameters:
-- not_found (catalog name of the 404), unprocessable (catalog name of the 422),
-- bad_request (true when the spec lists 400: a bad path parameter then answers 400, else 404).
local definitions = require "sapwf.emulator.server.api.definitions"
local instances = require "sapwf.emulator.server.api.instances"
local tasks = require "sapwf.emulator.server.api.tasks"
local forms = require "sapwf.emulator.server.api.forms"
local messages = require "sapwf.emulator.server.api.messages"
local tenant = require "sapwf.emulator.server.api.tenant"

local WD = "/v1/workflow-definitions/{definitionId}"
local WI = "/v1/workflow-instances/{workflowInstanceId}"
local TI = "/v1/task-instances/{taskInstanceId}"

local operations = {
  { "GET", "/v1/workflow-definitions", "WORKFLOW_DEFINITION_GET", definitions.list },
  { "GET", WD, "WORKFLOW_DEFINITION_GET", definitions.get, not_found = "definition_not_found" },
  { "DELETE", WD, "WORKFLOW_DEFINITION_UNDEPLOY", definitions.undeploy,
    not_found = "definition_not_found" },
  { "GET", WD .. "/versions", "WORKFLOW_DEFINITION_GET", definitions.versions,
    not_found = "definition_not_found" },
  { "GET", WD .. "/versions/{versionNumber}", "WORKFLOW_DEFINITION_GET", definitions.version,
    not_found = "version_not_found" },
  { "GET", WD .. "/model", "WORKFLOW_DEFINITION_GET_MODEL", definitions.model,
    not_found = "model_not_found" },
  { "GET", WD .. "/versions/{versionNumber}/model", "WORKFLOW_DEFINITION_GET_MODEL",
    definitions.version_model, not_found = "model_not_found" },
  { "GET", WD .. "/sample-contexts/default-start-context",
    "WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT", definitions.sample_context,
    not_found = "sample_not_found" },
  { "GET", WD .. "/versions/{versionNumber}/sample-contexts/default-start-context",
    "WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT", definitions.version_sample_context,
    not_found = "sample_not_found" },

  { "GET", "/v1/workflow-instances", "WORKFLOW_INSTANCE_GET", instances.list },
  { "POST", "/v1/workflow-instances", "WORKFLOW_INSTANCE_START", instances.start,
    not_found = "definition_not_found", unprocessable = "context_invalid", bad_request = true },
  { "PATCH", "/v1/workflow-instances", "WORKFLOW_INSTANCES_UPDATE", instances.bulk_update,
    bad_request = true },
  { "GET", WI, "WORKFLOW_INSTANCE_GET", instances.get, not_found = "instance_not_found",
    bad_request = true },
  { "PATCH", WI, instances.status_authority, instances.update_status,
    not_found = "instance_not_found", unprocessable = "status_invalid", bad_request = true },
  { "GET", WI .. "/attributes", "WORKFLOW_INSTANCE_GET_ATTRIBUTES", instances.attributes,
    not_found = "instance_not_found" },
  { "GET", WI .. "/context", "WORKFLOW_INSTANCE_GET_CONTEXT", instances.get_context,
    not_found = "instance_not_found" },
  { "PATCH", WI .. "/context", "WORKFLOW_INSTANCE_UPDATE_CONTEXT", instances.patch_context,
    not_found = "instance_not_found" },
  { "PUT", WI .. "/context", "WORKFLOW_INSTANCE_UPDATE_CONTEXT", instances.put_context,
    not_found = "instance_not_found" },
  { "GET", WI .. "/attachments", "WORKFLOW_INSTANCE_GET_ATTACHMENTS", instances.get_attachments,
    not_found = "instance_not_found" },
  { "PUT", WI .. "/attachments", "WORKFLOW_INSTANCE_UPDATE_ATTACHMENTS",
    instances.put_attachments, not_found = "instance_not_found" },
  { "GET", WI .. "/error-messages", "WORKFLOW_INSTANCE_GET_ERROR_MESSAGES",
    instances.error_messages, not_found = "instance_not_found" },
  { "GET", WI .. "/execution-logs", "WORKFLOW_INSTANCE_GET_EXECUTION_LOGS",
    instances.execution_logs, not_found = "instance_not_found" },
  { "GET", WI .. "/roles", "WORKFLOW_INSTANCE_GET_ROLES", instances.get_roles,
    not_found = "instance_not_found" },
  { "PATCH", WI .. "/roles", "WORKFLOW_INSTANCE_UPDATE_ROLES", instances.patch_roles,
    not_found = "instance_not_found", bad_request = true },

  { "GET", "/v1/task-instances", "TASK_GET", tasks.list, bad_request = true },
  { "GET", TI, "TASK_GET", tasks.get, not_found = "task_not_found" },
  { "PATCH", TI, tasks.update_authority, tasks.update, not_found = "task_not_found",
    unprocessable = "task_patch_invalid", bad_request = true },
  { "GET", TI .. "/attributes", "TASK_GET_ATTRIBUTES", tasks.attributes,
    not_found = "task_not_found" },
  { "GET", TI .. "/context", "TASK_GET_CONTEXT", tasks.context, not_found = "task_not_found" },
  { "GET", TI .. "/attachments", "TASK_GET_ATTACHMENTS", tasks.attachments,
    not_found = "task_not_found" },
  { "GET", TI .. "/form", "TASK_GET_FORM", tasks.form, not_found = "task_form_not_assigned" },
  { "GET", TI .. "/form/model", "TASK_GET_FORM_MODEL", tasks.form_model,
    not_found = "task_form_not_assigned" },
  { "GET", "/v1/task-definitions", "TASK_DEFINITION_GET", tasks.definitions,
    bad_request = true },

  { "GET", "/v1/forms", "FORM_DEFINITION_GET", forms.list },
  { "DELETE", "/v1/forms/{formId}", "FORM_DEFINITION_UNDEPLOY", forms.delete,
    not_found = "form_not_found" },
  { "GET", "/v1/forms/{formId}/revisions/{revisionId}/model", "FORM_DEFINITION_GET_MODEL",
    forms.revision_model, not_found = "form_not_found" },
  { "GET", "/v1/forms/{formId}/versions/{versionNumber}/model", "FORM_DEFINITION_GET_MODEL",
    forms.version_model, not_found = "form_not_found" },

  { "POST", "/v1/messages/", "MESSAGE_SEND", messages.send,
    unprocessable = "message_no_match" },
  { "GET", "/v1/jobs/{jobId}", "JOB_STATUS_GET", tenant.job, not_found = "job_not_found" },
  { "POST", "/v1/purge", "DATA_PURGE", tenant.purge },
  { "GET", "/v1/export", "DATA_EXPORT", tenant.export },
}

-- Length limits of the path parameters (the spec's minLength/maxLength).
operations.PARAMETERS = {
  definitionId = { 1, 64 }, versionNumber = { 1, 10 }, workflowInstanceId = { 36, 36 },
  taskInstanceId = { 36, 36 }, formId = { 1, 255 }, revisionId = { 1, 64 }, jobId = { 1, 36 },
}

for _, operation in ipairs(operations) do
  operation.method, operation.pattern = operation[1], operation[2]
  operation.authority, operation.handler = operation[3], operation[4]
  -- the counter key of stats().api_requests_by_operation
  operation.key = operation.method .. " " .. operation.pattern
end

return operations
