-- Failures against the emulator: 403 with the fix, bad credentials without the secret,
-- network failures and what they mean for a POST, bodies that are not JSON, limits.
local sapwf = require "sapwf"
local cjson = require "cjson"
local helpers = require "spec.helpers"

describe("failures", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local LIMITED_ID = "sb-sapwf-limited!b1|workflow!b10150"

  -- retries = 0: these tests are about what one attempt's error says; what sapwf retries
  -- by itself is spec/40's subject.
  local function client(name, extra)
    local opts = { service_key = emu:service_key(name or "full"), retries = 0 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(sapwf.new(opts))
  end

  local function instance_count()
    return #assert(emu:control("GET", "/instances"))
  end

  -- No value of err, nor its one-line form, may contain `secret`.
  local function assert_secret_free(err, secret)
    assert.is_nil(tostring(err):find(secret, 1, true))
    for k, v in pairs(err) do
      assert.is_nil(tostring(v):find(secret, 1, true), k)
    end
  end

  describe("403", function()
    it("names the authority and the exact fix, keeping what the token has", function()
      local wf = client("limited")
      local inst, err = wf:start("simple", { a = 1 })
      assert.is_nil(inst)
      assert.equal("forbidden", err.kind)
      assert.equal(403, err.status)
      assert.equal("User does not have sufficient privileges.", err.message)
      assert.equal("WORKFLOW_INSTANCE_START", err.authority)
      assert.equal("rejected", err.outcome)
      assert.is_false(err.retryable)
      -- The limited client holds the default authorities; the hint keeps them all.
      local _, _, scope = wf:token()
      local granted = {}
      for a in scope:gmatch("%.([%u_]+)") do granted[#granted + 1] = '"' .. a .. '"' end
      assert.equal(6, #granted)
      granted[#granted + 1] = '"WORKFLOW_INSTANCE_START"'
      table.sort(granted)
      assert.equal("cf update-service <instance> -c '{\"authorities\":["
        .. table.concat(granted, ",") .. "]}' (the list replaces the old one; it keeps the 6 "
        .. "authorities this token has), then get a new token with wf:token(true)", err.hint)
      -- the line stays short whatever the token has: the cf command is named, not quoted
      assert.equal("sapwf: forbidden (403) POST /v1/workflow-instances: User does not have "
        .. "sufficient privileges. Needs authority WORKFLOW_INSTANCE_START; fix: see err.hint"
        .. " [request_id " .. err.request_id .. "]", tostring(err))
      assert.same({ "FORM_DEFINITION_DEPLOY", "PROCESS_TEMPLATE_DEPLOY",
                    "PROCESS_VARIANT_DEPLOY", "TASK_DEFINITION_GET", "TASK_GET",
                    "WORKFLOW_DEFINITION_DEPLOY" }, (function()
                      local g = {}
                      for i, a in ipairs(err.granted) do g[i] = a end
                      table.sort(g)
                      return g
                    end)())
      assert.equal(0, emu:stats().instances_started)
    end)

    it("names the service instance when known", function()
      local wf = client("limited", { instance = "my-workflow" })
      local _, err = wf:instances()
      assert.matches("^cf update%-service my%-workflow %-c", err.hint)
    end)

    it("names the binding's instance for a client from VCAP_SERVICES", function()
      local vcap = cjson.encode({ workflow = { { label = "workflow", name = "wf-prod",
        instance_name = "wf-prod", credentials = emu:service_key("limited") } } })
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
        package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
        package.cpath = "./build/lua5.4/?.so;" .. package.cpath
        local wf = assert(require("sapwf").from_env("wf-prod"))
        local _, err = wf:definitions()
        io.write(err.hint)
      ]])
      f:close()
      local vfile = os.tmpname()
      f = assert(io.open(vfile, "w"))
      f:write(vcap)
      f:close()
      local pipe = assert(io.popen('VCAP_SERVICES="$(cat ' .. vfile .. ')" lua5.4 ' .. script
                                   .. " 2>&1"))
      local out = pipe:read("*a")
      pipe:close()
      os.remove(script)
      os.remove(vfile)
      assert.matches("^cf update%-service wf%-prod %-c '{\"authorities\":%[.*"
                     .. "\"WORKFLOW_DEFINITION_GET\"", out)
    end)

    it("says when the token already has the authority", function()
      local wf = client("limited")
      -- Granted after the token was issued: the 403 fetches a new token (spec/40 proves it).
      emu:set_client(LIMITED_ID, { authorities = { "WORKFLOW_INSTANCE_START" } })
      assert(wf:token(true))
      assert(wf:start("simple"))
      emu:fault{ fault = "status", status = 403, method = "POST", path = "/v1/workflow-instances" }
      local _, err3 = wf:start("simple")
      assert.matches("^the token already has WORKFLOW_INSTANCE_START", err3.hint)
      assert.equal(1, emu:stats().instances_started)
    end)
  end)

  describe("credentials", function()
    it("a wrong secret gives kind auth, and the secret appears nowhere", function()
      local key = emu:service_key("full")
      local wrong = "Wr0ng-S3cret$" .. string.rep("z", 20)
      key.uaa.clientsecret = wrong
      local wf = assert(sapwf.new{ service_key = key })
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal("invalid_client", err.code)
      assert.equal("Bad credentials", err.message)
      assert.equal("token", err.phase)
      assert.equal("not_sent", err.outcome)
      assert.is_false(err.retryable)
      assert_secret_free(err, wrong)
      assert_secret_free(err, key.uaa.clientid .. ":")
      local _, terr = wf:token()
      assert.equal("auth", terr.kind)
      assert_secret_free(terr, wrong)
      assert.is_nil(tostring(wf):find(wrong, 1, true))
      assert.equal(0, emu:stats().api_requests)
    end)

    it("a token that no longer works after the replay gives kind auth", function()
      local wf = client()
      assert(wf:definitions())
      emu:fault{ fault = "status", status = 401, path = "/v1/workflow-definitions", times = 2 }
      local _, err = wf:definitions()
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal(2, emu:stats().token_requests)     -- one replay with a new token
    end)
  end)

  describe("network", function()
    it("nothing listening: kind network, not sent, retryable", function()
      local wf = assert(sapwf.new{ api_url = "http://127.0.0.1:1/workflow-service/rest",
        token_url = "http://127.0.0.1:1/oauth/token", client_id = "c", client_secret = "s",
        connect_timeout = 2 })
      local inst, err = wf:start("simple")
      assert.is_nil(inst)
      assert.equal("network", err.kind)
      assert.equal("not_sent", err.outcome)
      assert.is_true(err.retryable)
      assert.is_number(err.curl_code)
    end)

    it("a timeout on a GET is retryable", function()
      local wf = client(nil, { timeout = 0.5 })
      assert(wf:token())
      emu:fault{ fault = "delay", delay = 2, method = "GET", path = "/v1/workflow-definitions" }
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("timeout", err.kind)
      assert.is_true(err.retryable)
    end)

    it("a start whose answer is lost: outcome unknown, not retryable, instance exists", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "drop_after", method = "POST", path = "/v1/workflow-instances" }
      local inst, err = wf:start("simple", { order = 1 })
      assert.is_nil(inst)
      assert.equal("network", err.kind)
      assert.equal("unknown", err.outcome)
      assert.is_false(err.retryable)
      assert.matches("outcome unknown", tostring(err))
      assert.equal(1, instance_count())                 -- it did start, exactly once
      assert.equal(1, emu:stats().instances_started)
    end)

    it("a start refused before it ran (connection dropped): network, no instance", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "drop_before", method = "POST", path = "/v1/workflow-instances" }
      local _, err = wf:start("simple")
      assert.equal("network", err.kind)
      assert.equal("POST", err.method)
      assert.equal(0, instance_count())
    end)

    it("a truncated answer to a GET is a network error", function()
      local wf = client()
      assert(wf:token())
      emu:fault{ fault = "truncate", method = "GET", path = "/v1/workflow-definitions" }
      local _, err = wf:definitions()
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)
  end)

  describe("answers that are not what was expected", function()
    it("a 2xx start with a broken body: decode, and the workflow did start", function()
      local wf = client()
      emu:fault{ fault = "malformed", method = "POST", path = "/v1/workflow-instances" }
      local inst, err = wf:start("simple")
      assert.is_nil(inst)
      assert.equal("decode", err.kind)
      assert.equal(201, err.status)
      assert.equal("unknown", err.outcome)
      assert.is_false(err.retryable)
      assert.matches("the workflow may have started; look it up before retrying", err.message)
      assert.equal(1, instance_count())
    end)

    -- The emulator's "body" fault answers without performing the call: these check what
    -- the client makes of the answer, not what the service did.
    it("a 201 start whose JSON is not the new instance: decode, outcome unknown", function()
      local wf = client()
      local cases = {
        { "null", "JSON null" }, { "5", "a number" }, { "true", "a boolean" },
        { '"started"', "a string" }, { "[]", "an array" }, { '[{"id":"i1"}]', "an array" },
        { "{}", "an object without an id string" },
        { '{"id":5}', "an object without an id string" },
        { '{"id":""}', "an object without an id string" },
      }
      for _, case in ipairs(cases) do
        emu:fault{ fault = "body", status = 201, body = case[1], method = "POST",
                   path = "/v1/workflow-instances" }
        local inst, err = wf:start("simple")
        assert.is_nil(inst, case[1])
        assert.equal("decode", err.kind, case[1])
        assert.equal(201, err.status)
        assert.equal("unknown", err.outcome)
        assert.is_false(err.retryable)
        assert.equal("POST", err.method)
        assert.equal("/v1/workflow-instances", err.path)
        local expected = case[2]:find("without", 1, true) and "the new instance" or "an object"
        assert.equal("the 201 answer is " .. case[2] .. " where " .. expected .. " was "
          .. "expected; the workflow may have started; look it up before retrying",
          err.message, case[1])
        assert.matches("may have started", tostring(err), 1, true)
      end
      -- never sent again: one request for each answer
      assert.equal(#cases, emu:stats().api_requests_by_operation["POST /v1/workflow-instances"])
      assert.is_string(assert(wf:start("simple")).id)           -- the client still works
    end)

    it("every call with a JSON answer refuses one of the other JSON type", function()
      local wf = client()
      local inst = assert(wf:start("orderapproval", { product = "Camera", price = 100,
                                                    orderId = "4711" }))
      local id = inst.id
      local def = "orderapproval"
      local task = assert(wf:tasks{ workflowInstanceId = id })[1]
      -- call, the path the fault matches, the JSON type the call answers
      local calls = {
        { function() return wf:definitions() end, "/v1/workflow-definitions", "array" },
        { function() return wf:definition(def) end, "/v1/workflow-definitions/" .. def, "object" },
        { function() return wf:definition_versions(def) end,
          "/v1/workflow-definitions/" .. def .. "/versions", "array" },
        { function() return wf:definition_model(def) end,
          "/v1/workflow-definitions/" .. def .. "/model", "object" },
        { function() return wf:sample_context(def) end,
          "/v1/workflow-definitions/" .. def .. "/sample-contexts", "object" },
        { function() return wf:instances() end, "/v1/workflow-instances", "array" },
        { function() return wf:instance(id) end, "/v1/workflow-instances/" .. id, "object" },
        { function() return wf:context(id) end, "/v1/workflow-instances/" .. id .. "/context",
          "object" },
        { function() return wf:execution_logs(id) end,
          "/v1/workflow-instances/" .. id .. "/execution-logs", "array" },
        { function() return wf:roles(id) end, "/v1/workflow-instances/" .. id .. "/roles",
          "object" },
        { function() return wf:tasks() end, "/v1/task-instances", "array" },
        { function() return wf:task(task.id) end, "/v1/task-instances/" .. task.id, "object" },
        { function() return wf:task_context(task.id) end,
          "/v1/task-instances/" .. task.id .. "/context", "object" },
        { function() return wf:forms() end, "/v1/forms", "array" },
      }
      -- one wrong answer per call, in turn (each fault costs a control request)
      local wrong = { array = { '{"id":"x"}', "{}", "null", '"x"' },
                      object = { '[{"id":"x"}]', "[]", "null", "7" } }
      for i, call in ipairs(calls) do
        local bodies = wrong[call[3]]
        local body = bodies[(i - 1) % #bodies + 1]
        emu:fault{ fault = "body", status = 200, body = body, method = "GET", path = call[2] }
        local value, err = call[1]()
        assert.is_nil(value, call[2] .. " " .. body)
        assert.equal("decode", err.kind, call[2] .. " " .. body)
        assert.equal(200, err.status)
        assert.equal("unknown", err.outcome)
        assert.matches("where an " .. call[3] .. " was expected$", err.message)
      end
      -- A message's answer is the array of the instances that consumed it.
      emu:fault{ fault = "body", status = 200, body = "{}", method = "POST", path = "/v1/messages" }
      local consumers, err = wf:send_message{ definitionId = "orderShipped",
                                               workflowInstanceId = id }
      assert.is_nil(consumers)
      assert.equal("decode", err.kind)
      assert.equal("unknown", err.outcome)
      assert.equal("the 200 answer is an object where an array was expected; the change may "
        .. "have been made", err.message)
    end)

    it("wf:start_many: a start answered with what is not an instance is an error in its "
       .. "place, outcome unknown, and the others start", function()
      local wf = client()
      emu:fault{ fault = "body", status = 201, body = "null", method = "POST",
                 path = "/v1/workflow-instances" }
      local results = wf:start_many({ { definitionId = "simple" }, { definitionId = "simple" },
                                      { definitionId = "simple" } }, { concurrency = 1 })
      assert.equal(3, #results)
      assert.is_true(sapwf.is_error(results[1]))
      assert.equal("decode", results[1].kind)
      assert.equal("unknown", results[1].outcome)
      for i = 2, 3 do assert.is_string(results[i].id) end
      assert.equal(2, instance_count())
    end)

    it("an empty 200 where JSON was expected: decode", function()
      local wf = client()
      emu:fault{ fault = "empty", method = "GET", path = "/v1/workflow-definitions" }
      local _, err = wf:definitions()
      assert.equal("decode", err.kind)
      assert.equal("the 200 answer has an empty body where JSON was expected", err.message)
    end)

    it("an HTML proxy page: kind server, a short message naming the content type", function()
      local wf = client()
      emu:fault{ fault = "html", method = "GET", path = "/v1/workflow-definitions" }
      local _, err = wf:definitions()
      assert.equal("server", err.kind)
      assert.equal(502, err.status)
      assert.equal("HTTP 502 with a body that is not JSON (text/html)", err.message)
      assert.is_nil(tostring(err):find("<", 1, true))
      assert.is_true(err.retryable)
    end)

    it("an answer over max_response is refused, not buffered", function()
      local wf = client(nil, { max_response = 64 * 1024 })
      emu:fault{ fault = "oversize", size = 128 * 1024, method = "GET",
                 path = "/v1/workflow-definitions" }
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("server", err.kind)
    end)

    it("a max_response below the token answer's size bounds the API's answers only", function()
      local wf = client(nil, { max_response = 2048 })
      -- the emulator's token answer is several KB; a list of one definition is not
      local list, err = wf:definitions({ top = 1 })
      assert.is_table(list, tostring(err))
      assert.is_true(#assert(wf:token()) > 2048)
      emu:fault{ fault = "oversize", size = 4096, method = "GET",
                 path = "/v1/workflow-definitions" }
      list, err = wf:definitions()
      assert.is_nil(list)
      assert.matches("larger than max_response", err.message)
      assert.are_not.equal("token", err.phase)
    end)
  end)

  describe("statuses", function()
    local cases = {
      { 429, "POST", "rate_limited", true, "rejected", "bpm.workflowruntime.rate.limit.exceeded" },
      { 503, "POST", "server", false, "unknown" },
      { 500, "POST", "server", false, "unknown", "bpm.workflowruntime.rest.internal.server.error" },
      { 500, "GET", "server", true, "unknown" },
      { 409, "PATCH", "conflict", true, "rejected" },
      { 422, "POST", "invalid", false, "rejected" },
    }
    local paths = { POST = "/v1/workflow-instances", GET = "/v1/workflow-instances",
                    PATCH = "/v1/workflow-instances/" }
    for _, c in ipairs(cases) do
      it(string.format("%d on %s: %s, retryable %s, outcome %s", c[1], c[2], c[3],
                       tostring(c[4]), c[5]), function()
        local wf = client()
        local inst = assert(wf:start("simple"))
        emu:fault{ fault = "status", status = c[1], method = c[2], path = paths[c[2]],
                   retry_after = 3 }
        local value, err
        if c[2] == "POST" then value, err = wf:start("simple")
        elseif c[2] == "GET" then value, err = wf:instances()
        else value, err = wf:cancel(inst.id) end
        assert.is_nil(value)
        assert.equal(c[1], err.status)
        assert.equal(c[3], err.kind)
        assert.equal(c[4], err.retryable)
        assert.equal(c[5], err.outcome)
        if c[6] then assert.equal(c[6], err.code) end
        assert.is_string(err.message)
      end)
    end

    it("a token endpoint 5xx is kind server and retryable", function()
      local wf = client()
      emu:fault{ fault = "status", status = 503, path = "/oauth/token" }
      local _, err = wf:definitions()
      assert.equal("server", err.kind)
      assert.equal("token", err.phase)
      assert.is_true(err.retryable)
      assert.equal("not_sent", err.outcome)
      assert(wf:definitions())                          -- the fault was used up
    end)

    it("no token endpoint at token_url (404, 405): kind config, with the fix", function()
      -- the natural mistake: the key's uaa.url as token_url, without /oauth/token
      local key = emu:service_key("full")
      local wf = assert(sapwf.new{ api_url = key.endpoints.workflow_rest_url,
                                   token_url = key.uaa.url, client_id = key.uaa.clientid,
                                   client_secret = key.uaa.clientsecret })
      local fix = "token_url must be the token endpoint's full URL: the service key's "
        .. "uaa.url followed by /oauth/token"
      local _, err = wf:definitions()
      assert.same({ "config", "token", 404, "not_sent", false },
                  { err.kind, err.phase, err.status, err.outcome, err.retryable })
      assert.equal(fix .. " (sapwf.new builds it so from a service key)", err.hint)
      assert.matches("; fix: " .. fix, tostring(err), 1, true)
      wf:close()
      wf = client()
      emu:fault{ fault = "status", status = 405, path = "/oauth/token" }
      _, err = wf:token()
      assert.same({ "config", 405 }, { err.kind, err.status })
      assert.matches(fix, err.hint, 1, true)
      assert(wf:token())                                -- the fault was used up
    end)
  end)

  describe("config", function()
    it("a key without a secret never reaches the network", function()
      local key = emu:service_key("full")
      key.uaa.clientsecret = nil
      local wf, err = sapwf.new{ service_key = key }
      assert.is_nil(wf)
      assert.equal("config", err.kind)
      assert.equal("service key has no uaa.clientsecret", err.message)
      assert.equal(0, emu:stats().token_requests)
    end)
  end)
end)
