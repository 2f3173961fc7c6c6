-- The workflow data of one nginx worker: definitions, forms, instances, tasks, jobs.
--
-- Instances and tasks are kept in arrays in creation order (so "startedAt desc", the
-- default order, is a walk backwards and needs no sort) plus a map by id. Removing one
-- marks it and drops it from the map; the arrays are compacted once most are removed.
-- With worker_processes > 1 every worker has its own data (see the launcher's notes).
--
-- At most store.max_instances instances are kept (0: no limit); beyond that the oldest is
-- dropped ("instances_evicted" in the stats). A benchmark can start millions of instances;
-- memory, and the garbage collector's work, must not grow with them.
local util = require "sapwf.emulator.server.util"
local shared = require "sapwf.emulator.server.shared"

local ipairs = ipairs

local store = {}

local instance_seq, task_seq, log_seq = 0, 0, 0
local removed_instances, removed_tasks = 0, 0
local live_instances, evict_from = 0, 1

store.max_instances = 0

--- Empties everything and puts the seed data back (workflows.seed fills definitions/forms).
function store.clear()
  store.definitions = {}       -- id -> definition
  store.forms = {}             -- id -> form
  store.instances = {}         -- creation order
  store.instance_by_id = {}
  store.tasks = {}             -- creation order
  store.task_by_id = {}
  store.jobs = {}              -- id -> job
  store.running_jobs = {}      -- purpose key -> job (for "already running" answers)
  removed_instances, removed_tasks = 0, 0
  live_instances, evict_from = 0, 1
end

local function evict_oldest()
  local list = store.instances
  while evict_from <= #list do
    local oldest = list[evict_from]
    evict_from = evict_from + 1
    if not oldest.removed then
      store.remove_instance(oldest)
      shared.count("instances_evicted")
      return
    end
  end
end

function store.add_instance(instance)
  instance_seq = instance_seq + 1
  instance.seq = instance_seq
  local list = store.instances
  list[#list + 1] = instance
  store.instance_by_id[instance.id] = instance
  live_instances = live_instances + 1
  if store.max_instances > 0 and live_instances > store.max_instances then evict_oldest() end
end

function store.live_instances()
  return live_instances
end

function store.add_task(task)
  task_seq = task_seq + 1
  task.seq = task_seq
  local list = store.tasks
  list[#list + 1] = task
  store.task_by_id[task.id] = task
end

local function compact(list)
  local kept = {}
  for i = 1, #list do
    if not list[i].removed then kept[#kept + 1] = list[i] end
  end
  return kept
end

function store.remove_task(task)
  if task.removed then return end
  task.removed = true
  store.task_by_id[task.id] = nil
  removed_tasks = removed_tasks + 1
  if removed_tasks > 1000 and removed_tasks * 2 > #store.tasks then
    store.tasks, removed_tasks = compact(store.tasks), 0
  end
end

--- Removes an instance and its tasks.
function store.remove_instance(instance)
  if instance.removed then return end
  instance.removed = true
  store.instance_by_id[instance.id] = nil
  for _, task in ipairs(instance.tasks or {}) do store.remove_task(task) end
  removed_instances = removed_instances + 1
  live_instances = live_instances - 1
  if removed_instances > 1000 and removed_instances * 2 > #store.instances then
    store.instances, removed_instances = compact(store.instances), 0
    evict_from = 1
  end
end

--- Appends an execution log entry: its JSON shape minus id (a number here, a string in the
-- answer), timestamp (now unless given) and referenceInstanceId (the instance's id).
function store.log(instance, entry, timestamp)
  log_seq = log_seq + 1
  entry.id = log_seq
  entry.timestamp = timestamp or util.iso()
  local logs = instance.logs
  if not logs then logs = {}; instance.logs = logs end
  logs[#logs + 1] = entry
  return entry
end

--- A job that answers 200 once (RUNNING, with details) and is gone afterwards (404).
function store.new_job(purpose_key, details, on_finish)
  local job = { id = util.uuid(), status = "RUNNING", details = details,
    purpose_key = purpose_key, on_finish = on_finish }
  store.jobs[job.id] = job
  if purpose_key then store.running_jobs[purpose_key] = job end
  return job
end

function store.finish_job(job)
  store.jobs[job.id] = nil
  if job.purpose_key and store.running_jobs[job.purpose_key] == job then
    store.running_jobs[job.purpose_key] = nil
  end
  if job.on_finish then job.on_finish() end
end

store.clear()

return store
