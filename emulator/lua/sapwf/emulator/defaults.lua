-- Fixed facts of the emulated service, shared by the launcher (the test process, any Lua
-- from 5.1 to 5.4) and the server modules (LuaJIT inside nginx). Plain data only.
local defaults = {}

-- The xsappname of the workflow service on the trial landscape; every scope carries it.
defaults.service_xsappname = "workflow!b10150"
defaults.identityzone = "sapwf-emulator"
defaults.zoneid = "5a0d6f7e-3c1b-4e59-9d2a-0c8b7e6f4a21"
defaults.expires_in = 43199          -- what XSUAA answered on the trial (12 h less 1 s)

-- The orders a list can give entries that sort equal (emu:set_tie_order, PUT /_emulator/ties):
-- by creation (the default), or shuffled anew for each request.
defaults.tie_orders = { creation = true, shuffled = true }

-- Every authority a workflow service instance can be granted (workflow-api.md 6.2).
defaults.authorities = {
  "WORKFLOW_DEFINITION_GET", "WORKFLOW_DEFINITION_GET_MODEL",
  "WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT", "WORKFLOW_DEFINITION_UNDEPLOY",
  "WORKFLOW_DEFINITION_DEPLOY",
  "WORKFLOW_INSTANCE_START", "WORKFLOW_INSTANCE_GET", "WORKFLOW_INSTANCES_UPDATE",
  "WORKFLOW_INSTANCE_CANCEL", "WORKFLOW_INSTANCE_SUSPEND", "WORKFLOW_INSTANCE_RETRY_RESUME",
  "WORKFLOW_INSTANCE_GET_ATTRIBUTES", "WORKFLOW_INSTANCE_GET_CONTEXT",
  "WORKFLOW_INSTANCE_UPDATE_CONTEXT", "WORKFLOW_INSTANCE_GET_ATTACHMENTS",
  "WORKFLOW_INSTANCE_UPDATE_ATTACHMENTS", "WORKFLOW_INSTANCE_GET_ERROR_MESSAGES",
  "WORKFLOW_INSTANCE_GET_EXECUTION_LOGS", "WORKFLOW_INSTANCE_GET_ROLES",
  "WORKFLOW_INSTANCE_UPDATE_ROLES",
  "TASK_GET", "TASK_GET_ATTRIBUTES", "TASK_GET_CONTEXT", "TASK_GET_ATTACHMENTS",
  "TASK_GET_FORM", "TASK_GET_FORM_MODEL", "TASK_COMPLETE", "TASK_UPDATE",
  "TASK_DEFINITION_GET",
  "FORM_DEFINITION_GET", "FORM_DEFINITION_GET_MODEL", "FORM_DEFINITION_UNDEPLOY",
  "FORM_DEFINITION_DEPLOY",
  "PROCESS_TEMPLATE_DEPLOY", "PROCESS_VARIANT_DEPLOY",
  "MESSAGE_SEND", "JOB_STATUS_GET", "DATA_EXPORT", "DATA_PURGE",
}

-- What a token carries when the instance was created without an authorities list.
defaults.default_token_authorities = {
  "TASK_GET", "TASK_DEFINITION_GET", "WORKFLOW_DEFINITION_DEPLOY", "FORM_DEFINITION_DEPLOY",
  "PROCESS_TEMPLATE_DEPLOY", "PROCESS_VARIANT_DEPLOY",
}

local function client_id(name)
  return "sb-sapwf-" .. name .. "!b1|" .. defaults.service_xsappname
end

-- The clients every emulator starts with. Secrets are made per start by the server.
-- certificate_only: the client has no secret and gets tokens only on the mTLS listener.
defaults.clients = {
  { name = "full", clientid = client_id("full"), authorities = defaults.authorities },
  { name = "limited", clientid = client_id("limited"),
    authorities = defaults.default_token_authorities },
  { name = "x509", clientid = client_id("x509"), authorities = defaults.authorities,
    certificate_only = true },
}

defaults.x509_clientid = client_id("x509")

-- Application scopes (workflow-api.md 6.1): every built-in client (a service instance) and
-- every seeded definition belong to this one; instances and tasks inherit their
-- definition's. "own" and "shared" are what the API shows, never a scope's name.
defaults.application_scope = "default"
-- The instance parameter defaultCollectionQueryFilter when none was set [inferred: the
-- broker documents only the values; "shared" lists the most, so it changes nothing until a
-- scope or a filter is set].
defaults.query_filter = "shared"

-- SAP Build Process Automation mode (start{ spa = true }); workflow-api.md section 9.
-- The base paths the API answers under: the public one of the key's endpoints.api and the
-- gateway variant some SAP samples use.
defaults.spa = {
  region = "eu10",
  subdomain = "emulator",
  -- [inferred] the xsappname that prefixes an SPA token's scopes; no source shows one
  xsappname = "process-automation-service!b1",
  bases = { "/public/workflow/rest", "/workflow/rest" },
  -- Which SPA role a workflow authority belongs to, for the token's `scope` [inferred: SAP
  -- names ProcessAutomationAdmin for most operations, ProcessAutomationParticipant for
  -- starting and ProcessAutomationDeveloper for definitions; the split below is ours].
  -- Authorities not listed belong to ProcessAutomationAdmin.
  roles = {
    WORKFLOW_INSTANCE_START = "ProcessAutomationParticipant",
    TASK_GET = "ProcessAutomationParticipant",
    TASK_GET_CONTEXT = "ProcessAutomationParticipant",
    TASK_GET_ATTRIBUTES = "ProcessAutomationParticipant",
    TASK_GET_ATTACHMENTS = "ProcessAutomationParticipant",
    TASK_GET_FORM = "ProcessAutomationParticipant",
    TASK_GET_FORM_MODEL = "ProcessAutomationParticipant",
    TASK_COMPLETE = "ProcessAutomationParticipant",
    WORKFLOW_DEFINITION_GET = "ProcessAutomationDeveloper",
    WORKFLOW_DEFINITION_GET_MODEL = "ProcessAutomationDeveloper",
    WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT = "ProcessAutomationDeveloper",
    WORKFLOW_DEFINITION_DEPLOY = "ProcessAutomationDeveloper",
    WORKFLOW_DEFINITION_UNDEPLOY = "ProcessAutomationDeveloper",
    TASK_DEFINITION_GET = "ProcessAutomationDeveloper",
    FORM_DEFINITION_GET = "ProcessAutomationDeveloper",
    FORM_DEFINITION_GET_MODEL = "ProcessAutomationDeveloper",
    FORM_DEFINITION_DEPLOY = "ProcessAutomationDeveloper",
    FORM_DEFINITION_UNDEPLOY = "ProcessAutomationDeveloper",
    PROCESS_TEMPLATE_DEPLOY = "ProcessAutomationDeveloper",
    PROCESS_VARIANT_DEPLOY = "ProcessAutomationDeveloper",
  },
}

--- The SPA id of a seeded definition: <region>.<subdomain>.<project>.<process>.
function defaults.spa_definition_id(project, process)
  return defaults.spa.region .. "." .. defaults.spa.subdomain .. "." .. project .. "." .. process
end

return defaults
