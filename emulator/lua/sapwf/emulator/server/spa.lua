-- SAP Build Process Automation mode (emulator.start{ spa = true }): what an SPA tenant does
-- differently from the Workflow service (workflow-api.md section 9). The rest of the server
-- asks config.spa and calls in here.
--
--   * the API answers under /public/workflow/rest and the gateway's /workflow/rest (init.lua);
--   * a token's `scope` lists SPA roles, not workflow authorities (role_scopes);
--   * a body must be sent as application/json, else 415 (media_type_problem);
--   * a start must give the API trigger's required inputs, of their types, else 422
--     (input_problem); the seeded definitions have SPA ids and inputs (workflows.lua);
--   * the 201 of a start shows subject and businessKey as null (api/instances.lua).
local defaults = require "sapwf.emulator.defaults"
local json = require "sapwf.emulator.server.json"
local util = require "sapwf.emulator.server.util"

local ngx = ngx
local type, ipairs, tonumber = type, ipairs, tonumber
local match, lower, format, concat, sort = string.match, string.lower, string.format,
  table.concat, table.sort

local spa = {}

spa.BASES = defaults.spa.bases

local ROLE_PREFIX = defaults.spa.xsappname .. "."
local ROLES = defaults.spa.roles

--- The scopes of an SPA token for these authorities: the roles they belong to, plus
-- uaa.resource [inferred: no source shows an SPA client-credentials token].
function spa.role_scopes(authorities)
  local seen, scopes = {}, {}
  for _, authority in ipairs(authorities) do
    local role = ROLES[authority] or "ProcessAutomationAdmin"
    if not seen[role] then
      seen[role] = true
      scopes[#scopes + 1] = ROLE_PREFIX .. role
    end
  end
  sort(scopes)
  scopes[#scopes + 1] = "uaa.resource"
  return scopes
end

local WITH_BODY = { POST = true, PATCH = true, PUT = true }

--- 415 and its body when a POST, PATCH or PUT carries a body that is not declared
-- application/json; nil when it is fine. [inferred: the status is HTTP's and what a Spring
-- service answers; the body's wording is ours, in the TechnicalError shape.]
function spa.media_type_problem(method)
  if not WITH_BODY[method] then return nil end
  local length = tonumber(ngx.var.http_content_length or "")
  if (not length or length == 0) and not ngx.var.http_transfer_encoding then return nil end
  local given = ngx.var.content_type
  local media = given and lower(match(given, "^%s*([^;%s]+)") or "")
  if media == "application/json" then return nil end
  local message = given and format("Content type '%s' not supported.", given)
    or "No content type given."
  return 415, { error = { code = "bpm.workflowruntime.rest.content.type.unsupported",
    message = message .. " Send the request body as application/json.",
    logId = util.uuid() } }
end

local function type_ok(value, kind)
  if kind == "string" then return type(value) == "string" end
  if kind == "number" then return type(value) == "number" or json.integer_text(value) ~= nil end
  if kind == "boolean" then return type(value) == "boolean" end
  if kind == "object" then return json.is_object(value) end
  if kind == "array" then return json.is_array(value) end
  return true
end

--- The problems of a start context against the definition's API trigger inputs: message,
-- details (TechnicalError details), or nil when there are none. [inferred: SAP documents
-- 422 bpm.workflowruntime.rest.instance.context.invalid for an invalid context; that a
-- missing required input is one, and the wording, are ours.]
function spa.input_problem(definition, context)
  local details, names = {}, {}
  for _, input in ipairs(definition.inputs or {}) do
    local value = context[input.name]
    if value == nil or value == json.null then
      if input.required then
        names[#names + 1] = "'" .. input.name .. "'"
        details[#details + 1] = { severity = "error", message = format(
          "The required input '%s' (%s) of the API trigger is missing.", input.name,
          input.type) }
      end
    elseif not type_ok(value, input.type) then
      names[#names + 1] = "'" .. input.name .. "'"
      details[#details + 1] = { severity = "error", message = format(
        "The input '%s' of the API trigger must be of type %s.", input.name, input.type) }
    end
  end
  if not details[1] then return nil end
  return "Workflow context could not be set because it contained errors: check the input"
    .. (#names > 1 and "s " or " ") .. concat(names, ", ") .. " of the API trigger.",
    json.list(details)
end

return spa
