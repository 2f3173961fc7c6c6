-- The handler of examples/nginx/nginx.conf: a webhook-to-workflow bridge.
--
-- POST /orders with a JSON object starts the workflow DEFINITION with that object as its
-- context and answers
--   201 {"id": "<instance id>", "status": "RUNNING"}
--   400 {"error": "invalid", "message": "..."}        the body is not a JSON object
--   502 {"error": "<kind>", "status": <HTTP status of the service, if any>,
--        "outcome": "rejected" | "not_sent" | "unknown", "request_id": "..."}
-- On a 502 the error log gets the whole error (sapwf errors never hold a secret); the
-- caller gets its kind, not the service's words. outcome "unknown" means the start may
-- have happened: look for the instance before sending the order again.
local sapwf_ngx = require "sapwf.ngx"
local cjson = require "cjson.safe"

local ngx = ngx
local type, tostring, error = type, tostring, error

local webhook = {}

local DEFINITION = "orderapproval"

local wf                  -- made in init(), in nginx's master: every worker inherits it

--- init_by_lua: reads the service key (SAPWF_SERVICE_KEY: a path or the key's JSON text).
-- An error here stops nginx from starting, with the reason.
function webhook.init()
  local key = os.getenv("SAPWF_SERVICE_KEY")
  if not key or key == "" then
    error("webhook: set SAPWF_SERVICE_KEY to the service key file (and keep "
      .. "`env SAPWF_SERVICE_KEY;` in nginx.conf)", 0)
  end
  local err
  wf, err = sapwf_ngx.new{ service_key = key, thread_pool = "sapwf",
                           shared_dict = "sapwf_tokens" }
  if not wf then error("webhook: " .. tostring(err), 0) end
end

--- init_worker_by_lua: makes the Lua states of the worker threads before requests come
-- (nginx would make each on the event loop when a call first needs it). 64: the 32
-- threads of `thread_pool sapwf` busy, and as many calls waiting for one.
function webhook.init_worker()
  assert(sapwf_ngx.warm_up{ thread_pool = "sapwf", vms = 64 })
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(status)
end

--- content_by_lua for POST /orders.
function webhook.orders()
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return reply(405, { error = "method_not_allowed" })
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()    -- nil when empty (client_body_buffer_size keeps
  if not body or not body:find("^%s*{") then -- every accepted body in memory)
    return reply(400, { error = "invalid", message = "the body must be a JSON object" })
  end
  local context, message = sapwf_ngx.decode(body)
  if type(context) ~= "table" then
    return reply(400, { error = "invalid", message = "the body is not JSON: "
                                                      .. tostring(message) })
  end

  -- Yields while a worker thread talks to the service: this worker serves other
  -- connections meanwhile.
  local inst, err = wf:start(DEFINITION, context)
  if not inst then
    ngx.log(ngx.ERR, "starting ", DEFINITION, " failed: ", tostring(err))
    return reply(502, { error = err.kind, status = err.status, outcome = err.outcome,
                        request_id = err.request_id })
  end
  return reply(201, { id = inst.id, status = inst.status })
end

return webhook
