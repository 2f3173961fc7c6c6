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

--- The latest version of every deployed workflow definition.
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "createdAt desc"), `inlinecount` (true: meta.total). An unknown name raises.
-- @treturn table array of definitions: id, version, name, createdAt, createdBy, ...
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET
function methods:definitions(q)
  open(self, "definitions")
  return call(self, DEFINITIONS, DEFINITIONS.path, query.build(DEFINITIONS, q, "definitions", 1))
end

--- The latest version of one workflow definition.
-- @function methods:definition
-- @tparam string id the workflow definition id
-- @treturn table the definition: id, version, name, createdAt, ...
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET; "not_found" when no definition has
-- that id
methods.definition = by_id(DEFINITION, "definition")

--- Every deployed version of a workflow definition.
-- @tparam string id the workflow definition id
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000), `orderby`
-- (e.g. "createdAt desc"), `inlinecount` (true: meta.total). An unknown name raises.
-- @treturn table array of definitions, one per version
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET; "not_found" when no definition has
-- that id
function methods:definition_versions(id, q)
  open(self, "definition_versions")
  check_id("definition_versions", 1, id)
  return call(self, VERSIONS, path_of(VERSIONS, id),
              query.build(VERSIONS, q, "definition_versions", 2))
end

--- One version of a workflow definition.
-- @tparam string id the workflow definition id
-- @tparam string|integer version the version number
-- @treturn table the definition as it was in that version
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET; "not_found" for an unknown id or
-- version
function methods:definition_version(id, version)
  open(self, "definition_version")
  check_id("definition_version", 1, id)
  version = check_version("definition_version", 2, version)
  return call(self, VERSION, path_of(VERSION, id, version), "")
end

--- The model (the BPMN graph as JSON) of the latest version of a definition, or of the
-- given version.
-- @tparam string id the workflow definition id
-- @tparam[opt] string|integer version a version number (default: the latest version)
-- @treturn table the model
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET_MODEL; "not_found" for an unknown id
-- or version
function methods:definition_model(id, version)
  open(self, "definition_model")
  check_id("definition_model", 1, id)
  if version == nil then return call(self, MODEL, path_of(MODEL, id), "") end
  version = check_version("definition_model", 2, version)
  return call(self, VERSION_MODEL, path_of(VERSION_MODEL, id, version), "")
end

--- The default start context of a definition's latest version, or of the given version: a
-- template for wf:start's context.
-- @tparam string id the workflow definition id
-- @tparam[opt] string|integer version a version number (default: the latest version)
-- @treturn table the context
-- @fails "forbidden" without WORKFLOW_DEFINITION_GET_SAMPLE_CONTEXT; "not_found" for an
-- unknown id or version
function methods:sample_context(id, version)
  open(self, "sample_context")
  check_id("sample_context", 1, id)
  if version == nil then return call(self, SAMPLE, path_of(SAMPLE, id), "") end
  version = check_version("sample_context", 2, version)
  return call(self, VERSION_SAMPLE, path_of(VERSION_SAMPLE, id, version), "")
end

--- Undeploys a workflow definition: all its versions, and its instances with them (SAP:
-- "deletes the corresponding workflow instances", the completed and canceled ones too,
-- cascade or not). The service works on it in the background; follow the job with
-- wf:job(result.job).
-- @tparam string id the workflow definition id
-- @tparam[opt] table opts `cascade` (default false): true also deletes the active instances
-- (RUNNING, ERRONEOUS, SUSPENDED); without it, active instances make the service refuse
-- @treturn table `{job = id, location = url}`: the job's id and the Location header
-- @fails "forbidden" without WORKFLOW_DEFINITION_UNDEPLOY; "not_found" for an unknown id;
-- "conflict" (412) while active instances exist (without cascade)
function methods:undeploy(id, opts)
  open(self, "undeploy")
  check_id("undeploy", 1, id)
  return call(self, UNDEPLOY, path_of(UNDEPLOY, id), query.build(UNDEPLOY, opts, "undeploy", 2))
end

return { methods = methods }
