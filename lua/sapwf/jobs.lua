--- Background jobs (undeploy, bulk delete) and form definitions.
local base = require "sapwf.base"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local open, call, by_id = base.open, base.call, base.by_id

local methods = {}

local JOB, FORMS = ops.job, ops.forms

--- The status of a background job (wf:undeploy, wf:delete_instances). A finished job is
-- gone: 404, as for an id that never was one (the service tells them apart no further).
-- @function methods:job
-- @tparam string id the job id: the `job` of what wf:undeploy or wf:delete_instances returned
-- @treturn table the job (SAP's Job): `status`, "RUNNING" or "ERRONEOUS" (then `error`:
-- code, message, logId, says why it failed), and `details`
-- @fails "forbidden" without JOB_STATUS_GET; "not_found" for an unknown or finished job
methods.job = by_id(JOB, "job")

--- The form definitions.
-- @tparam[opt] table q names: `top` (page size, 0 to 1000), `skip` (0 to 4000),
-- `inlinecount` (true: meta.total); the filters `type` (an array value repeats a filter:
-- the service combines them with OR). An unknown name raises.
-- @treturn table array of forms
-- @fails "forbidden" without FORM_DEFINITION_GET
function methods:forms(q)
  open(self, "forms")
  return call(self, FORMS, FORMS.path, query.build(FORMS, q, "forms", 1))
end

return { methods = methods }
