-- The emulator as an SAP Build Process Automation tenant (start{ spa = true }), and
-- application scopes with defaultCollectionQueryFilter (both modes). Driven with the curl
-- command line, as spec/90; one case runs sapwf itself against the SPA emulator.
local cjson = require "cjson.safe"
local helpers = require "spec.helpers"
local defaults = require "sapwf.emulator.defaults"

local FULL = "sb-sapwf-full!b1|workflow!b10150"
local LIMITED = "sb-sapwf-limited!b1|workflow!b10150"
local OTHER = "sb-sapwf-other!b2|workflow!b10150"
local ORDER = "eu10.emulator.orderproject.orderapproval"
local SIMPLE = "eu10.emulator.basicproject.simple"
local FAILING = "eu10.emulator.basicproject.failing"
local SPA_BASE = "/public/workflow/rest"
local FORBIDDEN = '{"error":{"message":"User does not have sufficient privileges."}}'

local read_file = helpers.read_file

-- curl (spec/helpers.lua), a raw body sent with no Content-Type unless a header gives one.
local function curl(dir, method, url, opts)
  opts = opts or {}
  opts.untyped = true
  return helpers.curl(dir, method, url, opts)
end

-- The API of one emulator through curl: token(client) and api(method, path, opts) with
-- opts.token, opts.base (the API's base path) and curl's options.
local function client_of(emu, default_base)
  local secrets = {}
  local c = {}
  function c.secret(id)
    secrets[id] = secrets[id] or emu:clients()[id].clientsecret
    return secrets[id]
  end
  function c.token_answer(id)
    return curl(emu.dir, "POST", emu.url .. "/oauth/token", { user = id .. ":" .. c.secret(id),
      form = { "grant_type=client_credentials" } })
  end
  function c.token(id)
    local answer = c.token_answer(id)
    assert.equal(200, answer.status)
    return answer.json.access_token
  end
  function c.api(method, path, opts)
    opts = opts or {}
    local headers = { "Authorization: Bearer " .. (opts.token or c.token(opts.client or FULL)) }
    for _, header in ipairs(opts.headers or {}) do headers[#headers + 1] = header end
    opts.headers = headers
    return curl(emu.dir, method, emu.url .. (opts.base or default_base) .. path, opts)
  end
  return c
end

local function ids(list)
  local out = {}
  for i, item in ipairs(list) do out[i] = item.id end
  table.sort(out)
  return out
end

local ORDER_CONTEXT = { product = "Camera", price = 100, orderId = "4711" }

describe("emulator in SAP Build Process Automation mode", function()
  local emu, c

  setup(function()
    emu = helpers.start_emulator({ spa = true })
    c = client_of(emu, SPA_BASE)
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)
  after_each(function() assert.same({}, emu:log_errors()) end)

  local function start(context, opts)
    opts = opts or {}
    opts.json = { definitionId = opts.definitionId or ORDER, context = context }
    return c.api("POST", "/v1/workflow-instances", opts)
  end

  it("hands out SPA service keys: endpoints.api and uaa, no workflow_rest_url", function()
    assert.is_true(emu.spa)
    local key = emu:service_key("full")
    assert.same({ api = emu.url }, key.endpoints)
    assert.is_nil(key.endpoints.workflow_rest_url)
    assert.equal(emu.url, key.uaa.url)
    assert.equal(FULL, key.uaa.clientid)
    assert.equal(c.secret(FULL), key.uaa.clientsecret)
    assert.equal(defaults.spa.subdomain, key.uaa.identityzone)
    local tls = emu:service_key("limited", { tls = true })
    assert.same({ api = emu.https_url }, tls.endpoints)
    assert.equal(emu.mtls_url, emu:service_key("x509").uaa.certurl)
    -- the library turns endpoints.api into the API's base URL
    local opts = assert(require("sapwf.servicekey").resolve(key))
    assert.equal(emu.url .. SPA_BASE, opts.api_url)
    assert.equal(emu.url .. "/oauth/token", opts.token_url)
  end)

  it("issues tokens whose scope names SPA roles; authorities still decide (403)", function()
    local answer = c.token_answer(FULL)
    local prefix = defaults.spa.xsappname .. "."
    assert.equal(prefix .. "ProcessAutomationAdmin " .. prefix .. "ProcessAutomationDeveloper "
      .. prefix .. "ProcessAutomationParticipant uaa.resource", answer.json.scope)
    assert.is_nil(answer.json.scope:find("WORKFLOW_", 1, true))
    emu:set_client(LIMITED, { authorities = { "WORKFLOW_INSTANCE_START" } })
    assert.equal(prefix .. "ProcessAutomationParticipant uaa.resource",
      c.token_answer(LIMITED).json.scope)
    local token = c.token(LIMITED)
    assert.equal(201, start(ORDER_CONTEXT, { token = token }).status)
    local denied = c.api("GET", "/v1/workflow-instances", { token = token })
    assert.equal(403, denied.status)
    assert.equal(FORBIDDEN, denied.body)
  end)

  it("serves the API under /public/workflow/rest and /workflow/rest, not the CF path", function()
    local token = c.token(FULL)
    for _, base in ipairs({ "/public/workflow/rest", "/workflow/rest" }) do
      local list = c.api("GET", "/v1/workflow-definitions", { token = token, base = base })
      assert.equal(200, list.status, base)
      assert.same({ FAILING, SIMPLE, ORDER }, ids(list.json))
      assert.equal(201, start(ORDER_CONTEXT, { token = token, base = base }).status, base)
    end
    local cf = c.api("GET", "/v1/workflow-definitions", { token = token,
      base = "/workflow-service/rest" })
    assert.equal(404, cf.status)
    -- a job's Location is under the base the request came in on
    local undeploy = c.api("DELETE", "/v1/workflow-definitions/" .. SIMPLE,
      { token = token, base = "/workflow/rest" })
    assert.equal(202, undeploy.status)
    assert.matches("^/workflow/rest/v1/jobs/", undeploy.headers.location)
    assert.equal(200, curl(emu.dir, "GET", emu.url .. undeploy.headers.location,
      { headers = { "Authorization: Bearer " .. token } }).status)
    -- the control API stays where it is
    assert.is_table(emu:control("GET", "/").operations)
    assert.equal(2, #emu:instances())
  end)

  it("answers 415 for a body sent without Content-Type: application/json", function()
    local token = c.token(FULL)
    local text = assert(cjson.encode({ definitionId = ORDER, context = ORDER_CONTEXT }))
    local none = c.api("POST", "/v1/workflow-instances", { token = token, body = text })
    assert.equal(415, none.status)
    assert.is_string(none.json.error.message)
    assert.matches("application/json", none.json.error.message)
    local plain = c.api("POST", "/v1/workflow-instances", { token = token, body = text,
      headers = { "Content-Type: text/plain" } })
    assert.equal(415, plain.status)
    assert.matches("text/plain", plain.json.error.message)
    local charset = c.api("POST", "/v1/workflow-instances", { token = token, body = text,
      headers = { "Content-Type: application/json;charset=UTF-8" } })
    assert.equal(201, charset.status)
    local id = charset.json.id
    for _, method in ipairs({ "PATCH", "PUT" }) do
      local context = c.api(method, "/v1/workflow-instances/" .. id .. "/context",
        { token = token, body = '{"note":"x"}' })
      assert.equal(415, context.status, method)
    end
    assert.equal(204, c.api("PATCH", "/v1/workflow-instances/" .. id .. "/context",
      { token = token, json = { note = "x" } }).status)
    assert.equal(1, #emu:instances())
  end)

  it("checks the API trigger's inputs: 422 names what is missing or of the wrong type", function()
    local token = c.token(FULL)
    local missing = start({ product = "Camera", orderId = "4711" }, { token = token })
    assert.equal(422, missing.status)
    local err = missing.json.error
    assert.equal("bpm.workflowruntime.rest.instance.context.invalid", err.code)
    assert.matches("'price'", err.message)
    assert.equal(1, #err.details)
    assert.equal("error", err.details[1].severity)
    assert.matches("required input 'price' %(number%)", err.details[1].message)
    local wrong = start({ product = "Camera", orderId = 4711, price = 1 }, { token = token })
    assert.equal(422, wrong.status)
    assert.matches("'orderId'.*string", wrong.json.error.details[1].message)
    local empty = start(nil, { token = token })
    assert.equal(422, empty.status)
    assert.equal(3, #empty.json.error.details)
    -- optional inputs may be left out
    assert.equal(201, start({}, { token = token, definitionId = SIMPLE }).status)
    local unknown = start(ORDER_CONTEXT, { token = token, definitionId = "orderapproval" })
    assert.equal(404, unknown.status)
    assert.equal("bpm.workflowruntime.rest.definition.not.found", unknown.json.error.code)
    assert.equal(1, #emu:instances())
  end)

  it("has SPA ids, and null subject and businessKey in the 201, set on a later GET", function()
    local token = c.token(FULL)
    local started = start(ORDER_CONTEXT, { token = token })
    assert.equal(201, started.status)
    assert.equal(cjson.null, started.json.subject)
    assert.equal(cjson.null, started.json.businessKey)
    assert.equal(ORDER, started.json.definitionId)
    local got = c.api("GET", "/v1/workflow-instances/" .. started.json.id, { token = token })
    assert.equal("Order Camera", got.json.subject)
    assert.equal("4711", got.json.businessKey)
    local tasks = c.api("GET", "/v1/task-instances", { token = token })
    assert.equal("approve@" .. ORDER, tasks.json[1].definitionId)
    assert.equal(ORDER, tasks.json[1].workflowDefinitionId)
    -- only a start form names its workflow definitions
    local forms = c.api("GET", "/v1/forms?type=start", { token = token })
    assert.equal(1, #forms.json)
    assert.equal(ORDER, forms.json[1].workflowDefinitions[1].id)
  end)

  it("runs with sapwf: start with the trigger's inputs, then complete the task", function()
    local sapwf = require "sapwf"
    local wf = assert(sapwf.new{ service_key = emu:service_key("full") })
    finally(function() wf:close() end)
    local inst = assert(wf:start(ORDER, ORDER_CONTEXT))
    assert.equal(cjson.null, inst.subject)
    local tasks = assert(wf:tasks{ workflowInstanceId = inst.id })
    assert.equal(1, #tasks)
    assert.is_true(assert(wf:complete_task(tasks[1].id, { approved = true },
      { decision = "approve" })))
    local after = assert(wf:instance(inst.id))
    assert.equal("Order Camera", after.subject)
    assert.equal("COMPLETED", assert(wf:task(tasks[1].id)).status)
    local _, err = wf:start(ORDER, { product = "Camera" })
    assert.equal(422, err.status)
    assert.matches("price", err.message)
    -- application scopes in SPA mode: a shared definition, and a client whose
    -- defaultCollectionQueryFilter is "own", gets an empty list with every authority
    assert.equal(1, #assert(wf:instances()))
    emu:set_definition_scope(ORDER, "shared")
    emu:set_client(FULL, { query_filter = "own" })
    assert.same({}, assert(wf:instances()))
    assert.equal("shared", assert(wf:instance(inst.id)).applicationScope)
  end)
end)

describe("emulator application scopes", function()
  local emu, c

  setup(function()
    emu = helpers.start_emulator({ tls = false })
    c = client_of(emu, "/workflow-service/rest")
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    emu:set_client(OTHER, { secret = "other-secret", authorities = defaults.authorities,
      scope = "team-b" })
  end)
  after_each(function() assert.same({}, emu:log_errors()) end)

  local function order()
    local started = c.api("POST", "/v1/workflow-instances",
      { json = { definitionId = "orderapproval", context = ORDER_CONTEXT } })
    assert.equal(201, started.status)
    local tasks = c.api("GET", "/v1/task-instances?workflowInstanceId=" .. started.json.id)
    return started.json, tasks.json[1]
  end

  -- The ids each collection GET lists for client, and the applicationScope of the first.
  local function lists(client)
    local token = c.token(client)
    local out = {}
    for name, path in pairs({ definitions = "/v1/workflow-definitions",
        instances = "/v1/workflow-instances", tasks = "/v1/task-instances" }) do
      local answer = c.api("GET", path, { token = token })
      assert.equal(200, answer.status, path)
      out[name] = #answer.json
      out[name .. "_scope"] = answer.json[1] and answer.json[1].applicationScope
    end
    return out
  end

  it("starts every client in the default scope with the filter \"shared\"", function()
    local clients = emu:clients()
    assert.equal(defaults.application_scope, clients[FULL].scope)
    assert.equal("shared", clients[FULL].query_filter)
    local scopes = emu:scopes()
    assert.equal("default", scopes.default_scope)
    assert.equal("default", scopes.definitions.orderapproval)
    assert.same({ scope = "team-b", query_filter = "shared" }, scopes.clients[OTHER])
    order()
    assert.same({ definitions = 3, definitions_scope = "own", instances = 1,
      instances_scope = "own", tasks = 1, tasks_scope = "own" }, lists(FULL))
  end)

  it("lists nothing to a client of another scope, which can still GET by id", function()
    local inst, task = order()
    assert.same({ definitions = 0, instances = 0, tasks = 0 }, lists(OTHER))
    local token = c.token(OTHER)
    local got = c.api("GET", "/v1/workflow-instances/" .. inst.id, { token = token })
    assert.equal(200, got.status)
    assert.equal("default", got.json.applicationScope)
    assert.equal("default", c.api("GET", "/v1/task-instances/" .. task.id,
      { token = token }).json.applicationScope)
    assert.equal("default", c.api("GET", "/v1/workflow-definitions/orderapproval",
      { token = token }).json.applicationScope)
    -- the client moves into the default scope: everything is its own
    emu:set_client(OTHER, { scope = "default" })
    assert.same({ definitions = 3, definitions_scope = "own", instances = 1,
      instances_scope = "own", tasks = 1, tasks_scope = "own" }, lists(OTHER))
  end)

  it("lists shared definitions, instances and tasks only with the filter \"shared\"", function()
    order()
    emu:set_definition_scope("orderapproval", "shared")
    assert.same({ definitions = 1, definitions_scope = "shared", instances = 1,
      instances_scope = "shared", tasks = 1, tasks_scope = "shared" }, lists(OTHER))
    emu:set_client(OTHER, { query_filter = "own" })
    assert.same({ definitions = 0, instances = 0, tasks = 0 }, lists(OTHER))
    -- the default scope's clients see it as shared too; "own" hides it from them
    local full = lists(FULL)
    assert.equal(3, full.definitions)
    assert.equal("shared", full.instances_scope)
    emu:set_client(FULL, { query_filter = "own" })
    full = lists(FULL)
    assert.equal(2, full.definitions)
    assert.equal(0, full.instances)
    assert.equal(0, full.tasks)
  end)

  it("gives a definition to another scope: its owner sees it as own", function()
    order()
    emu:set_definition_scope("orderapproval", "team-b")
    assert.same({ definitions = 1, definitions_scope = "own", instances = 1,
      instances_scope = "own", tasks = 1, tasks_scope = "own" }, lists(OTHER))
    local full = lists(FULL)
    assert.equal(2, full.definitions)
    assert.equal(0, full.instances)
    assert.equal("team-b", c.api("GET", "/v1/workflow-definitions/orderapproval")
      .json.applicationScope)
    emu:reset()
    assert.equal("default", emu:scopes().definitions.orderapproval)
  end)

  it("makes misuse of the scope controls an error", function()
    local cases = {
      { function() emu:set_client(OTHER, { scope = "own" }) end,
        "bad option 'scope' to 'set_client' (\"own\" is what the API shows for the caller's "
          .. "own scope, not a scope name)" },
      { function() emu:set_client(OTHER, { scope = "shared" }) end,
        "bad option 'scope' to 'set_client' (\"shared\" is for definitions: mark one shared "
          .. "with emu:set_definition_scope(id, \"shared\"))" },
      { function() emu:set_client(OTHER, { scope = "" }) end,
        "bad option 'scope' to 'set_client' (a scope name expected, got an empty string)" },
      { function() emu:set_client(OTHER, { scope = 5 }) end,
        "bad option 'scope' to 'set_client' (a scope name expected, got number)" },
      { function() emu:set_client(OTHER, { query_filter = "mine" }) end,
        "bad option 'query_filter' to 'set_client' (\"own\" or \"shared\" expected, got "
          .. "\"mine\")" },
      { function() emu:set_definition_scope("orderapproval", "own") end,
        "bad argument #2 to 'set_definition_scope' (\"own\" is what the API shows for the "
          .. "caller's own scope, not a scope name)" },
      { function() emu:set_definition_scope(1, "shared") end,
        "bad argument #1 to 'set_definition_scope' (string expected, got number)" },
    }
    helpers.assert_raises_here(cases, "91%-emulator_spa_spec%.lua$")
    local ok, msg = pcall(emu.set_definition_scope, emu, "nothing", "shared")
    assert.is_false(ok)
    assert.matches("404 unknown definition 'nothing'", msg)
    -- the HTTP controls check the same
    local _, err = emu:control("PUT", "/clients", { clientid = OTHER, query_filter = "all" })
    assert.matches("400 query_filter must be \"own\" or \"shared\"", err)
    _, err = emu:control("PUT", "/clients", { clientid = OTHER, scope = "own" })
    assert.matches("400 scope cannot be \"own\"", err)
    _, err = emu:control("PUT", "/definitions/orderapproval/scope", { scope = 1 })
    assert.matches("400 scope must be a non%-empty string", err)
    assert.same({ scope = "team-b", query_filter = "shared" }, emu:scopes().clients[OTHER])
    -- and the index lists them
    local seen = {}
    for _, op in ipairs(emu:control("GET", "/").operations) do
      seen[op.method .. " " .. op.path] = op.description
    end
    assert.matches("query_filter", seen["PUT /_emulator/clients"])
    assert.is_string(seen["PUT /_emulator/definitions/<id>/scope"])
    assert.is_string(seen["GET /_emulator/scopes"])
  end)
end)
