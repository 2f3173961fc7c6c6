-- /v1/workflow-definitions...: definitions, versions, models, sample contexts, undeploy.
local json = require "sapwf.emulator.server.json"
local respond = require "sapwf.emulator.server.respond"
local query = require "sapwf.emulator.server.query"
local views = require "sapwf.emulator.server.views"
local store = require "sapwf.emulator.server.store"

local ngx = ngx
local pairs, ipairs, tonumber = pairs, ipairs, tonumber
local match = string.match
local list = json.list

local definitions = {}

local ORDER_FIELDS = { id = true, version = true, name = true, createdAt = true,
  createdBy = true }

local function numeric(value) return value and tonumber(value) end

local function jobs_of(definition)
  local job = definition.undeploy_job
  if job then return { { id = job.id, purpose = "delete" } } end
  return {}
end

-- The Location of a job, under the base path the request came in on (/workflow-service/rest;
-- in SPA mode /public/workflow/rest or /workflow/rest [inferred: the same base]).
local function job_location(job)
  local base = match(ngx.var.request_uri, "^(.-)/v1/") or "/workflow-service/rest"
  return { Location = base .. "/v1/jobs/" .. job.id }
end
definitions.job_location = job_location

-- One sortable record per definition version.
local function record(definition, version)
  return { seq = definition.seq, id = definition.id, version = version.version,
    name = definition.name, createdAt = version.createdAt, createdBy = definition.createdBy,
    definition = definition, source = version }
end

local function sorted_page(req, records, with_jobs, viewer)
  local args = req:args()
  local field, descending = query.orderby(args, ORDER_FIELDS, "createdAt", true, true)
  local paging = query.paging(args)
  query.sort(records, field, descending, field == "version" and numeric or nil)
  local page, headers = query.page(records, paging, function(r)
    return views.definition(r.definition, r.source, with_jobs and jobs_of(r.definition),
      viewer)
  end)
  return 200, list(page), headers
end

function definitions.list(req)
  local records = {}
  local viewer = views.viewer(req)
  for _, definition in pairs(store.definitions) do
    if views.listed(viewer, definition.id) then
      records[#records + 1] = record(definition, definition.by_version[definition.latest])
    end
  end
  return sorted_page(req, records, true, viewer)
end

local function find(req, failure)
  local definition = store.definitions[req.params.definitionId]
  if not definition then return nil, respond.fail(failure) end
  return definition
end

function definitions.get(req)
  local definition, status, body = find(req, "definition_not_found")
  if not definition then return status, body end
  return 200, views.definition(definition, definition.by_version[definition.latest],
    jobs_of(definition), views.viewer(req))
end

function definitions.versions(req)
  local definition, status, body = find(req, "definition_not_found")
  if not definition then return status, body end
  local records = {}
  for _, version in ipairs(definition.versions) do
    records[#records + 1] = record(definition, version)
  end
  return sorted_page(req, records, false, views.viewer(req))
end

local function find_version(req, failure)
  local definition, status, body = find(req, failure)
  if not definition then return nil, status, body end
  local version = definition.by_version[req.params.versionNumber]
  if not version then return nil, respond.fail(failure) end
  return definition, version
end

function definitions.version(req)
  local definition, version, body = find_version(req, "version_not_found")
  if not definition then return version, body end
  return 200, views.definition(definition, version, nil, views.viewer(req))
end

function definitions.model(req)
  local definition, status, body = find(req, "model_not_found")
  if not definition then return status, body end
  return 200, definition.by_version[definition.latest].model
end

function definitions.version_model(req)
  local definition, version, body = find_version(req, "model_not_found")
  if not definition then return version, body end
  return 200, version.model
end

local function sample(definition)
  if not definition.sample_context then return respond.fail("sample_not_found") end
  return 200, { id = "default-start-context", modelElementId = "startevent1",
    content = definition.sample_context }
end

function definitions.sample_context(req)
  local definition, status, body = find(req, "sample_not_found")
  if not definition then return status, body end
  return sample(definition)
end

function definitions.version_sample_context(req)
  local definition, version, body = find_version(req, "sample_not_found")
  if not definition then return version, body end
  return sample(definition)
end

local ACTIVE = { RUNNING = true, ERRONEOUS = true, SUSPENDED = true }

--- DELETE: 202 + Location of a job; the definition is gone once the job has been read.
function definitions.undeploy(req)
  local definition, status, body = find(req, "definition_not_found")
  if not definition then return status, body end
  if definition.undeploy_job then return 303, nil, job_location(definition.undeploy_job) end

  local cascade = query.single(req:args(), "cascade")
  if cascade ~= nil and cascade ~= "true" and cascade ~= "false" then
    query.invalid("The value of the query parameter 'cascade' must be true or false.")
  end
  local of_definition, active = {}, 0
  for _, instance in ipairs(store.instances) do
    if not instance.removed and instance.definitionId == definition.id then
      of_definition[#of_definition + 1] = instance
      if ACTIVE[instance.status] then active = active + 1 end
    end
  end
  if active > 0 and cascade ~= "true" then return respond.fail("instances_running") end

  for _, instance in ipairs(of_definition) do store.remove_instance(instance) end
  local id = definition.id
  local job = store.new_job("undeploy:" .. id,
    { instancesInitial = #of_definition, instancesLeft = 0 },
    function()
      if store.definitions[id] == definition then store.definitions[id] = nil end
    end)
  definition.undeploy_job = job
  return 202, nil, job_location(job)
end

return definitions
