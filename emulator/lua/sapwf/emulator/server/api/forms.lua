-- /v1/forms...: form definitions (metadata, models, undeploy).
local json = require "sapwf.emulator.server.json"
local respond = require "sapwf.emulator.server.respond"
local query = require "sapwf.emulator.server.query"
local views = require "sapwf.emulator.server.views"
local store = require "sapwf.emulator.server.store"

local pairs, tostring = pairs, tostring

local forms = {}

local TYPES = { start = true, task = true }

--- The latest version of each form, newest first; `type` filters start or task forms.
function forms.list(req)
  local args = req:args()
  local paging = query.paging(args)
  local kind = query.single(args, "type")
  if kind ~= nil and not TYPES[kind] then
    query.invalid("The value '" .. kind .. "' of the query parameter 'type' is invalid:"
      .. " use 'start' or 'task'.")
  end
  local records = {}
  for _, form in pairs(store.forms) do
    if not kind or form.type == kind then
      records[#records + 1] = { seq = 0, createdAt = form.createdAt, id = form.id, form = form }
    end
  end
  query.sort(records, "createdAt", true)
  local page, headers = query.page(records, paging, function(r) return views.form(r.form) end)
  return 200, json.list(page), headers
end

function forms.delete(req)
  local id = req.params.formId
  if not store.forms[id] then return respond.fail("form_not_found") end
  store.forms[id] = nil
  return 204
end

function forms.revision_model(req)
  local form = store.forms[req.params.formId]
  if not form or form.revision ~= req.params.revisionId then
    return respond.fail("form_not_found")
  end
  return 200, form.model
end

function forms.version_model(req)
  local form = store.forms[req.params.formId]
  if not form or tostring(form.version) ~= req.params.versionNumber then
    return respond.fail("form_not_found")
  end
  return 200, form.model
end

return forms
