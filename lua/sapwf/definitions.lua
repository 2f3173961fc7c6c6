--- Workflow definitions: list, read, versions, models, sample contexts, undeploy.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local open, call, path_of, by_id = base.open, base.call, base.path, base.by_id
local check_id, check_version = base.check_id, base.check_version

local methods = {}

local DEFINITIONS, DEFINITION = ops.definitions, ops.definition
local VERSIONS, VERSION = ops.definition_versions, ops.definition_version
local MODEL, VERSION_MODEL = ops.definition_model, ops.definition_version_model
local SAMPLE, VERSION_SAMPLE = ops.sample_context, ops.definition_version_sample_context
local UNDEPLOY = ops.undeploy

--- The latest version of every deployed definition: array, meta.
function methods.definitions(self, q)
  open(self, "definitions")
  return call(self, DEFINITIONS, DEFINITIONS.path, query.build(DEFINITIONS, q, "definitions", 1))
end

--- The latest version of one definition.
-- @function methods.definition
-- @string id the definition id
-- @treturn table the definition: id, version, name, createdAt, ...
-- @treturn table meta
methods.definition = by_id(DEFINITION, "definition")

--- Every deployed version of a definition: array, meta.
function methods.definition_versions(self, id, q)
  open(self, "definition_versions")
  check_id("definition_versions", 1, id)
  return call(self, VERSIONS, path_of(VERSIONS, id),
              query.build(VERSIONS, q, "definition_versions", 2))
end

--- One version of a definition (version: integer or string).
function methods.definition_version(self, id, version)
  open(self, "definition_version")
  check_id("definition_version", 1, id)
  version = check_version("definition_version", 2, version)
  return call(self, VERSION, path_of(VERSION, id, version), "")
end

--- The model of the latest version, or of the given one.
function methods.definition_model(self, id, version)
  open(self, "definition_model")
  check_id("definition_model", 1, id)
  if version == nil then return call(self, MODEL, path_of(MODEL, id), "") end
  version = check_version("definition_model", 2, version)
  return call(self, VERSION_MODEL, path_of(VERSION_MODEL, id, version), "")
end

--- The default start context of the latest version, or of the given one.
function methods.sample_context(self, id, version)
  open(self, "sample_context")
  check_id("sample_context", 1, id)
  if version == nil then return call(self, SAMPLE, path_of(SAMPLE, id), "") end
  version = check_version("sample_context", 2, version)
  return call(self, VERSION_SAMPLE, path_of(VERSION_SAMPLE, id, version), "")
end

--- Undeploys a definition (opts.cascade = true also deletes its instances). The service
-- works on it in the background: returns `{job = id, location = url}` (the job's id and the
-- Location header), meta; follow it with wf:job(result.job).
function methods.undeploy(self, id, opts)
  open(self, "undeploy")
  check_id("undeploy", 1, id)
  return call(self, UNDEPLOY, path_of(UNDEPLOY, id), query.build(UNDEPLOY, opts, "undeploy", 2))
end

return { methods = methods }
