-- Which service a client talks to (the Workflow service or SAP Build Process Automation)
-- and what that changes: the base URL a key or api_url gives, the words of errors and
-- hints (a `cf update-service` means nothing on SPA), and errors that say which base URL
-- was used when nothing answered there.
local helpers = require "spec.helpers"
local sapwf = require "sapwf"
local service = require "sapwf.service"
local servicekey = require "sapwf.servicekey"

local CF = "https://api.workflow-sap.cfapps.eu10.hana.ondemand.com/workflow-service/rest"
local GATEWAY = "https://spa-api-gateway-bpi-eu-prod.cfapps.eu10.hana.ondemand.com"

local function spa_key(api)
  return { endpoints = { api = api },
           uaa = { url = "https://sub.authentication.eu10.hana.ondemand.com",
                   clientid = "sb-spa!b1", clientsecret = "spa-secret-value" } }
end

describe("the service kind", function()
  it("is told from the API URL", function()
    assert.equal("workflow", service.kind(CF))
    assert.equal("workflow", service.kind(CF .. "/"))
    assert.equal("process-automation", service.kind(GATEWAY .. "/public/workflow/rest"))
    assert.equal("process-automation", service.kind(GATEWAY .. "/workflow/rest/"))
    assert.equal("process-automation", service.kind(GATEWAY .. "/custom"))
    assert.equal("process-automation", service.kind("http://127.0.0.1:8080/public/workflow/rest"))
    assert.equal("workflow", service.kind("http://127.0.0.1:8080/workflow-service/rest"))
    assert.equal("workflow", service.kind("not a url"))
  end)

  it("takes SPA's gateway paths as SAP documents them", function()
    assert.equal(GATEWAY .. "/public/workflow/rest",
                 assert(servicekey.resolve(spa_key(GATEWAY))).api_url)
    assert.equal(GATEWAY .. "/public/workflow/rest",
                 assert(servicekey.resolve(spa_key(GATEWAY .. "/"))).api_url)
    -- a gateway URL that already names the path (with or without /public) is kept
    assert.equal(GATEWAY .. "/workflow/rest",
                 assert(servicekey.resolve(spa_key(GATEWAY .. "/workflow/rest"))).api_url)
    assert.equal(GATEWAY .. "/public/workflow/rest",
                 assert(servicekey.resolve(spa_key(GATEWAY .. "/public/workflow/rest/v1/")))
                   .api_url)
  end)

  it("drops a trailing /v1 from api_url, as copied from SAP's docs", function()
    local wf = assert(sapwf.new{ api_url = GATEWAY .. "/public/workflow/rest/v1",
      token_url = "https://x.example/oauth/token", client_id = "c", client_secret = "s" })
    assert.equal("sapwf client (" .. GATEWAY .. "/public/workflow/rest)", tostring(wf))
    wf:close()
  end)

  it("can be given, and a bad one raises naming the option", function()
    local ok, msg = pcall(sapwf.new, { service_key = spa_key(GATEWAY), service = "spa" })
    assert.is_false(ok)
    assert.matches("bad option 'service' (\"workflow\" or \"process-automation\" expected)",
                   msg, 1, true)
    ok, msg = pcall(sapwf.new, { service_key = spa_key(GATEWAY), service = 1 })
    assert.is_false(ok)
    assert.matches("bad option 'service' (string expected, got number)", msg, 1, true)
  end)
end)

describe("errors in the words of the service in use", function()
  local emu
  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  -- The emulator's Workflow API, read as SPA (service given): what changes is the words.
  local function client(name, extra)
    local opts = { service_key = emu:service_key(name), retries = 0 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(sapwf.new(opts))
  end

  it("on SPA, a 403 names the role and never prescribes cf update-service", function()
    local wf = client("limited", { service = "process-automation" })
    local _, err = wf:start("simple", {})
    assert.equal("forbidden", err.kind)
    assert.is_nil(err.authority)
    assert.equal("ProcessAutomationParticipant", err.role)
    assert.is_nil(err.hint:find("cf update-service", 1, true))
    assert.matches("credentials it does not accept", err.hint, 1, true)
    assert.matches("API key", err.hint, 1, true)
    assert.matches("Needs role ProcessAutomationParticipant", tostring(err), 1, true)
    _, err = wf:request("GET", "/v1/export")
    assert.equal("ProcessAutomationAdmin", err.role)
    wf:close()
    -- the Workflow service's words stay as they were
    local cf = client("limited")
    _, err = cf:start("simple", {})
    assert.equal("WORKFLOW_INSTANCE_START", err.authority)
    assert.is_nil(err.role)
    assert.matches("^cf update%-service", err.hint)
    cf:close()
  end)

  it("a start of an unknown definition says what ids look like", function()
    local wf = client("full", { service = "process-automation" })
    local _, err = wf:start("orderapproval-typo", {})
    assert.equal("not_found", err.kind)
    assert.matches("<region>.<subdomain>.<project>.<process>", err.hint, 1, true)
    wf:close()
    wf = client("full")
    _, err = wf:start("orderapproval-typo", {})
    assert.matches("no deployed workflow has this definition id", err.hint, 1, true)
    wf:close()
  end)

  it("a Workflow service's 422 to a start says the context does not fit", function()
    local wf = client("full")
    emu:fault{ fault = "status", status = 422, method = "POST",
               path = "/v1/workflow-instances", times = 1 }
    local _, err = wf:start("simple", { n = 1 })
    emu:clear_faults()
    assert.equal("invalid", err.kind)
    assert.equal(422, err.status)
    -- err.details is named only when the service gave some
    assert.is_nil(err.details)
    assert.equal("the context does not fit the workflow's context", err.hint)
    emu:fault{ fault = "body", status = 422, method = "POST", path = "/v1/workflow-instances",
               times = 1, body = require("cjson").encode{ error = { message = "invalid",
                 details = { { message = "n must be a string", target = "n" } } } } }
    _, err = wf:start("simple", { n = 1 })
    emu:clear_faults()
    assert.equal("n must be a string", err.details[1].message)
    assert.equal("the context does not fit the workflow's context (err.details says where)",
                 err.hint)
    wf:close()
  end)

  it("a 404 nobody's service gave names the base URL used and the variants", function()
    local key = emu:service_key("full")
    -- the emulator serves /workflow-service/rest: /workflow/rest beneath it is nothing
    local wf = assert(sapwf.new{ service_key = key, retries = 0,
      api_url = key.endpoints.workflow_rest_url .. "/workflow/rest" })
    local _, err = wf:definitions()
    assert.equal("not_found", err.kind)
    assert.is_nil(err.code)
    local base = key.endpoints.workflow_rest_url .. "/workflow/rest"
    assert.equal(base, err.api_url)
    assert.matches("(API " .. base .. ")", tostring(err), 1, true)
    assert.matches("/public/workflow/rest", err.hint, 1, true)
    wf:close()
  end)

  it("415 and SPA's 422 on a start carry their fix", function()
    local wf = client("full", { service = "process-automation" })
    emu:fault{ fault = "body", status = 415, method = "POST", path = "/v1/workflow-instances",
      body = '{"error":{"message":"Unsupported Media Type"}}' }
    local _, err = wf:start("simple", { n = 1 })
    assert.equal(415, err.status)
    assert.matches("Content-Type: application/json", err.hint, 1, true)
    emu:clear_faults()
    emu:fault{ fault = "body", status = 422, method = "POST", path = "/v1/workflow-instances",
      body = '{"error":{"message":"Invalid context","code":"bpm.workflowruntime.rest.instance.'
        .. 'context.invalid","details":[{"severity":"ERROR","message":"orderId is missing"}]}}' }
    _, err = wf:start("simple", { n = 1 })
    assert.equal("invalid", err.kind)
    assert.matches("inputs of the process's API trigger", err.hint, 1, true)
    assert.matches("orderId is missing", tostring(err), 1, true)
    wf:close()
  end)

  it("a TLS failure of the API (not of the token) names the base URL too", function()
    local tls = helpers.start_emulator{ tls = true }
    local ok, problem = pcall(function()
      local key = tls:service_key("full")             -- the token over http
      local base = tls.https_url .. "/workflow-service/rest"
      local wf = assert(sapwf.new{ service_key = key, retries = 0, api_url = base })
      local _, err = wf:definitions()                 -- its CA is not trusted here
      assert.equal("tls", err.kind)
      assert.equal(base, err.api_url)
      assert.matches("(API " .. base .. ")", tostring(err), 1, true)
      wf:close()
    end)
    tls:stop()
    assert(ok, problem)
  end)

  it("a failure without an answer names the base URL it was sent to", function()
    local key = emu:service_key("full")
    local wf = assert(sapwf.new{ service_key = key, retries = 0,
      api_url = "http://127.0.0.1:1/workflow-service/rest" })
    assert(wf:token())                      -- the token comes; the API does not answer
    local _, err = wf:definitions()
    assert.equal("network", err.kind)
    assert.equal("http://127.0.0.1:1/workflow-service/rest", err.api_url)
    assert.matches("(API http://127.0.0.1:1/workflow-service/rest)", tostring(err), 1, true)
    wf:close()
  end)
end)

describe("an SAP Build Process Automation tenant (the emulator's SPA mode)", function()
  local emu, key, dir
  local ORDER = "eu10.emulator.orderproject.orderapproval"

  setup(function()
    emu = helpers.start_emulator{ spa = true }
    key = emu:service_key("full")
    dir = helpers.temp_dir()
  end)
  teardown(function()
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function() emu:reset() end)

  it("is reached from its key, and told apart by the URL alone", function()
    assert.is_nil(key.endpoints.workflow_rest_url)
    local wf = assert(sapwf.new{ service_key = key, retries = 0 })
    assert.equal("sapwf client (" .. key.endpoints.api .. "/public/workflow/rest)", tostring(wf))
    local inst = assert(wf:start(ORDER, { orderId = "1", product = "Lens", price = 5 }))
    assert.equal("RUNNING", inst.status)
    wf:close()
    local limited = assert(sapwf.new{ service_key = emu:service_key("limited"), retries = 0 })
    local _, err = limited:start(ORDER, { orderId = "2", product = "Lens", price = 5 })
    assert.equal("forbidden", err.kind)
    assert.equal("ProcessAutomationParticipant", err.role)
    assert.is_nil(err.authority)
    assert.is_nil(err.hint:find("cf update-service", 1, true))
    limited:close()
  end)

  it("answers under the gateway path without /public too; elsewhere the error says where",
    function()
      local gateway = key.endpoints.api
      local wf = assert(sapwf.new{ service_key = key, api_url = gateway .. "/workflow/rest" })
      assert.is_true(#assert(wf:definitions()) > 0)
      wf:close()
      local wrong = assert(sapwf.new{ service_key = key, retries = 0,
                                      api_url = gateway .. "/workflow-service/rest",
                                      service = "process-automation" })
      local _, err = wrong:definitions()
      assert.equal("not_found", err.kind)
      assert.matches("(API " .. gateway .. "/workflow-service/rest)", tostring(err), 1, true)
      assert.matches("/public/workflow/rest", err.hint, 1, true)
      assert.matches("/workflow/rest", err.hint, 1, true)
      wrong:close()
    end)

  it("explains a start that misses a trigger input, or names no deployed process", function()
    local wf = assert(sapwf.new{ service_key = key, retries = 0 })
    local _, err = wf:start(ORDER, { product = "Lens", price = 5 })
    assert.equal(422, err.status)
    assert.matches("inputs of the process's API trigger", err.hint, 1, true)
    assert.matches("orderId", tostring(err), 1, true)
    _, err = wf:start("orderapproval", { orderId = "1" })
    assert.equal(404, err.status)
    assert.matches("<region>.<subdomain>.<project>.<process>", err.hint, 1, true)
    wf:close()
  end)

  it("runs the README's Lua example as written", function()
    local readme = assert(helpers.read_file("README.md"))
    local section = assert(readme:match("\n## SAP Build Process Automation\n(.-)\n## "))
    local code = assert(section:match("\n```lua\n(.-)\n```"))
    local key_file = dir .. "/spa-key.json"
    local f = assert(io.open(key_file, "wb"))
    f:write(require("cjson").encode(key))
    f:close()
    -- the example's key file and subdomain are the reader's: these are the emulator's
    code = code:gsub('"spa%-key%.json"', string.format("%q", key_file))
               :gsub("eu10%.mysubaccount%.", "eu10.emulator.")
    local printed = {}
    local env = setmetatable({ sapwf = sapwf,
      print = function(...) printed[#printed + 1] = table.concat({ ... }, "\t") end },
      { __index = _G })
    local chunk = assert((loadstring or load)(code, "=README", "t", env))
    if setfenv then setfenv(chunk, env) end
    chunk()
    assert.same({ "Order Camera" }, printed)
    assert.equal(1, emu:stats().tasks_completed)
  end)
end)
