--- Background jobs (undeploy, bulk delete) and form definitions.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local open, call, by_id = base.open, base.call, base.by_id

local methods = {}

local JOB, FORMS = ops.job, ops.forms

--- The status of a background job. A finished job is gone: 404 (kind not_found).
-- @function methods.job
-- @string id the job id (the `job` of what wf:undeploy or wf:delete_instances returned)
-- @treturn table the job: id, status, ...
-- @treturn table meta
methods.job = by_id(JOB, "job")

--- Form definitions: array, meta (q: top, skip, inlinecount, type = "start" | "task").
function methods.forms(self, q)
  open(self, "forms")
  return call(self, FORMS, FORMS.path, query.build(FORMS, q, "forms", 1))
end

return { methods = methods }
