-- Which service a client talks to, and what that changes: SAP's Workflow service on Cloud
-- Foundry, or SAP Build Process Automation (SPA), which serves the same v1 API behind its
-- API gateway. Not API: servicekey.lua and options.lua find the base URL with it,
-- errors.lua the fixes a failure's hint gives (a `cf update-service` means nothing on SPA).
--
-- The kind comes from the API URL (the option `service` overrides it): SPA's gateway
-- serves the API under /public/workflow/rest (SAP's samples) or /workflow/rest (some keys
-- and samples reach it without /public); the Workflow service under /workflow-service/rest.
local type, ipairs, tostring = type, ipairs, tostring
local format, gsub, match, find, sub, lower = string.format, string.gsub, string.match,
  string.find, string.sub, string.lower

local service = {}

service.WORKFLOW, service.SPA = "workflow", "process-automation"
service.KINDS = { [service.WORKFLOW] = true, [service.SPA] = true }
service.NAMES = { [service.WORKFLOW] = "the Workflow service",
                  [service.SPA] = "SAP Build Process Automation" }

-- The paths under SPA's gateway that serve the v1 API, the one SAP's samples use first.
service.SPA_PATHS = { "/public/workflow/rest", "/workflow/rest" }

local function ends_with(s, tail) return #s >= #tail and sub(s, -#tail) == tail end

-- A base URL as sapwf uses it: no trailing slash, and no trailing /v1 (every call's path
-- starts with /v1, and URLs copied from SAP's docs often end in it).
function service.base(url)
  url = gsub(url, "/+$", "")
  if ends_with(lower(url), "/v1") then url = gsub(sub(url, 1, -4), "/+$", "") end
  return url
end

-- A URL as messages and tostring show it: without its user info ("user:password@"), which
-- may hold a password (a gateway's).
function service.shown_url(url)
  if type(url) ~= "string" then return url end
  return (gsub(url, "^(%a[%w+.-]*://)[^/?#]*@", "%1"))
end

-- The API base URL for an SPA key's endpoints.api (the gateway): as given when it already
-- ends in one of SPA_PATHS, else with the first of them.
function service.spa_base(api)
  api = service.base(api)
  for _, path in ipairs(service.SPA_PATHS) do
    if ends_with(lower(api), path) then return api end
  end
  return api .. service.SPA_PATHS[1]
end

-- The kind of service an API base URL belongs to.
function service.kind(api_url)
  if type(api_url) ~= "string" then return service.WORKFLOW end
  local host, path = match(api_url, "^%a[%w+.-]*://([^/?#]*)([^?#]*)")
  if not host then return service.WORKFLOW end
  path = lower(service.base(path))
  if ends_with(path, "/workflow-service/rest") then return service.WORKFLOW end
  for _, spa_path in ipairs(service.SPA_PATHS) do
    if ends_with(path, spa_path) then return service.SPA end
  end
  if find(lower(host), "spa-api-gateway", 1, true) then return service.SPA end
  return service.WORKFLOW
end

-- The role SAP's SPA API documentation names for an operation: ProcessAutomationParticipant
-- to start, ProcessAutomationDeveloper for definitions, ProcessAutomationAdmin for the rest.
function service.spa_role(op)
  if not op then return "ProcessAutomationAdmin" end
  if op.name == "start" then return "ProcessAutomationParticipant" end
  if find(op.path, "^/v1/workflow%-definitions") then return "ProcessAutomationDeveloper" end
  return "ProcessAutomationAdmin"
end

-- Whether an error code is one of the service's own (bpm.workflowruntime..., bpm.formruntime
-- ...): its 404s always carry one; a gateway's or a web server's do not.
function service.own_code(code)
  return type(code) == "string" and find(code, "^bpm%.") ~= nil
end

local function is_start(op) return op ~= nil and op.name == "start" end

-- The fix for an HTTP failure, in the words of the service in use, or nil when there is
-- nothing better than the message. e: the error object so far (status, code, method, path);
-- ctx: { service =, api_url =, op = (the operation, when known) }.
function service.hint(e, ctx)
  local kind, status, op = ctx.service or service.WORKFLOW, e.status, ctx.op
  local spa = kind == service.SPA
  if status == 403 and spa then
    return format("SAP Build Process Automation answers 403 both for credentials it does not "
      .. "accept and for missing access: check that uaa and endpoints.api come from one "
      .. "service key of this subaccount's process-automation-service instance, that its "
      .. "client may make this call (SAP names the role %s for it), and whether the "
      .. "environment wants an API key (option headers, --header)", service.spa_role(op))
  elseif status == 404 and not service.own_code(e.code) then
    -- Not the service's own 404 (it always has a bpm.* code): nothing is served here.
    local where = spa and format("SPA serves it at the gateway URL (endpoints.api) + %s, or "
      .. "+ %s on some gateways: give api_url to pick", service.SPA_PATHS[1],
      service.SPA_PATHS[2])
      or "the key's endpoints.workflow_rest_url is the one to use"
    return format("nothing answers this path under %s: check the API base URL (%s)",
      tostring(ctx.api_url or "the API URL"), where)
  elseif status == 404 and is_start(op) then
    return spa and "no deployed process has this definition id: SPA's ids look like "
        .. "<region>.<subdomain>.<project>.<process> (wf:definitions() lists them)"
      or "no deployed workflow has this definition id (wf:definitions() lists them)"
  elseif status == 415 then
    return "the service wants Content-Type: application/json with a body; sapwf sends it, "
      .. "so something on the way (a proxy, an API gateway's policy) dropped it"
  elseif status == 422 and is_start(op) then
    -- err.details only when the service gave some: a hint names no field that is not there
    local details = e.details ~= nil
    return spa and "the context must carry the inputs of the process's API trigger, with "
        .. "their names and types" .. (details and " (err.details says which)" or "")
      or "the context does not fit the workflow's context"
        .. (details and " (err.details says where)" or "")
  end
  return nil
end

return service
