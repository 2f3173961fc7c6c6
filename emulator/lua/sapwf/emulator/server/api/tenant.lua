-- Tenant operations: jobs, purge, export.
local respond = require "sapwf.emulator.server.respond"
local store = require "sapwf.emulator.server.store"
local definitions = require "sapwf.emulator.server.api.definitions"
local shared = require "sapwf.emulator.server.shared"
local util = require "sapwf.emulator.server.util"

local ngx = ngx
local format, find, lower, concat = string.format, string.find, string.lower, table.concat

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

-- Whether an Accept header lets a zip come back (none at all does, as in HTTP).
local function accepts_zip(accept)
  if accept == nil then return true end
  accept = lower(accept)
  return find(accept, "application/zip", 1, true) ~= nil
    or find(accept, "application/*", 1, true) ~= nil or find(accept, "*/*", 1, true) ~= nil
end

-- The body of a large export (emu:export_lines(n)): n numbered lines of 9 bytes, "00000001\n"
-- and on, so a test can tell a missing, doubled or shifted piece from the right bytes.
local function numbered_lines(n)
  local parts = {}
  for i = 1, n do parts[i] = format("%08d\n", i) end
  return concat(parts)
end

--- The export: an empty zip archive, or numbered lines after emu:export_lines(n). A zip
-- comes back only to a request that accepts one (406 otherwise, as a Spring service does
-- [inferred]).
function tenant.export()
  if not accepts_zip(ngx.var.http_accept) then
    return 406, { error = { message = "Could not find acceptable representation",
      logId = util.uuid() } }
  end
  local lines = shared.config().export_lines
  return 200, lines and numbered_lines(lines) or EMPTY_ZIP,
    { ["Content-Type"] = "application/zip",
      ["Content-Disposition"] = 'attachment; filename="export.zip"' }
end

return tenant
