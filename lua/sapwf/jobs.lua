--- Background jobs (undeploy, bulk delete) and form definitions.
local client = require "sapwf.client"
local query = require "sapwf.query"
local ops = require "sapwf.operations".by_name

local methods, open, call, path_of = client.methods, client.open, client.call, client.path

local JOB, FORMS = ops.job, ops.forms

--- The status of a background job. A finished job is gone: 404 (kind not_found).
function methods.job(self, id)
  open(self, "job")
  client.check_id("job", 1, id)
  return call(self, JOB, path_of(JOB, id), "")
end

--- Form definitions: array, meta (q: top, skip, inlinecount, type = "start" | "task").
function methods.forms(self, q)
  open(self, "forms")
  return call(self, FORMS, FORMS.path, query.build(FORMS, q, "forms", 1))
end
