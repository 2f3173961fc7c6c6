-- Tenant operations: jobs, purge, export.
local respond = require "sapwf.emulator.server.respond"
local store = require "sapwf.emulator.server.store"
local definitions = require "sapwf.emulator.server.api.definitions"

local tenant = {}

--- A job answers 200 once, while "running"; after that it is finished and unknown (404).
function tenant.job(req)
  local job = store.jobs[req.params.jobId]
  if not job then return respond.fail("job_not_found") end
  store.finish_job(job)
  return 200, { status = job.status, details = job.details }
end

--- Erases definitions, instances, tasks and forms at once; the job reports it.
function tenant.purge()
  local running = store.running_jobs.purge
  if running then return 303, nil, definitions.job_location(running) end
  local instances = 0
  for _, instance in ipairs(store.instances) do
    if not instance.removed then instances = instances + 1 end
  end
  store.clear()
  local job = store.new_job("purge", { instancesInitial = instances, instancesLeft = 0 })
  return 202, nil, definitions.job_location(job)
end

-- The smallest valid zip archive: an empty one (just the end of central directory record).
local EMPTY_ZIP = "PK\5\6" .. string.rep("\0", 18)

function tenant.export()
  return 200, EMPTY_ZIP, { ["Content-Type"] = "application/zip",
    ["Content-Disposition"] = 'attachment; filename="export.zip"' }
end

return tenant
