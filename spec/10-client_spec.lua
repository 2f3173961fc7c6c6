-- The client against the emulator: the quickstart flow, the token and its cache, the 401
-- replay, TLS, wf:request, closing, and argument errors.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

describe("sapwf client", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function client(name, extra)
    local opts = { service_key = emu:service_key(name or "full") }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(sapwf.new(opts))
  end

  -- (#child: a child Lua loads the module, so the stages that watch only this process
  -- leave it out: .ci/reliability.sh)
  it("examples/quickstart.lua (make demo) runs, also when the token has no expires_in #child",
     function()
    local dir = helpers.temp_dir()
    local key = dir .. "/key.json"
    helpers.write_file(key, require("sapwf.json").encode(emu:service_key("full")))
    local lua = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local q = require("sapwf.emulator.shell").quote
    local command = "SAPWF_SERVICE_KEY=" .. q(key) .. " LUA_PATH=" .. q(package.path)
      .. " LUA_CPATH=" .. q(package.cpath) .. " " .. lua .. " examples/quickstart.lua"
    local ok, out = helpers.run(command)
    assert.is_true(ok, out)
    assert.matches("1. token%s+valid for %d+ s", out)
    -- RFC 6749 only recommends expires_in: the token then never expires (math.huge)
    local token = assert(client():token())
    emu:fault{ fault = "body", method = "POST", path = "/oauth/token", times = -1,
               body = require("sapwf.json").encode({ access_token = token,
                                                     token_type = "bearer" }) }
    ok, out = helpers.run(command)
    assert.is_true(ok, out)
    assert.matches("1. token%s+no expiry given", out)
    emu:clear_faults()
    os.execute("rm -rf " .. q(dir))
  end)

  it("a token answer's expires_in: missing or null, no expiry; a number in a string, read",
     function()
    local token = assert(client():token())
    local json = require "sapwf.json"
    local function answer(expires_in_text)
      emu:clear_faults()
      emu:fault{ fault = "body", method = "POST", path = "/oauth/token", times = -1,
                 body = '{"access_token":' .. json.encode(token) .. ',"token_type":"bearer"'
                   .. (expires_in_text and ',"expires_in":' .. expires_in_text or "") .. "}" }
      local wf = client()
      local t, left = wf:token(true)
      wf:close()
      return t, left
    end
    for _, case in ipairs({ { nil, math.huge }, { "null", math.huge }, { "3599", 3599 },
                            { '"3599"', 3599 }, { "0", 0 } }) do
      local t, left = answer(case[1])
      assert.equal(token, t, tostring(case[1]))
      assert.is_true(left <= case[2] and left >= case[2] - 5, tostring(case[1]))
    end
    for _, bad in ipairs({ '"soon"', "-1", "true", "{}" }) do
      local t, err = answer(bad)
      assert.is_nil(t, bad)
      assert.same({ "decode", "token answer has a bad expires_in" }, { err.kind, err.message })
    end
    emu:clear_faults()
  end)

  it("runs the quickstart flow: start, read, complete the task, send the message", function()
    local wf = client()
    local inst = assert(wf:start("orderapproval", { product = "Camera", price = 100,
                                                    orderId = "4711" }))
    assert.equal("RUNNING", inst.status)
    assert.equal("orderapproval", inst.definitionId)
    assert.equal("Order Camera", inst.subject)
    assert.equal("4711", inst.businessKey)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", inst.id)

    local read = assert(wf:instance(inst.id))
    assert.equal(inst.id, read.id)
    local ctx = assert(wf:context(inst.id))
    assert.same({ product = "Camera", price = 100, orderId = "4711" }, ctx)

    local tasks = assert(wf:tasks{ workflowInstanceId = inst.id, status = "READY" })
    assert.equal(1, #tasks)
    assert.is_true(wf:complete_task(tasks[1].id, { approved = true }))
    assert.equal("COMPLETED", assert(wf:task(tasks[1].id)).status)

    local consumed = assert(wf:send_message{ definitionId = "orderShipped",
                                             workflowInstanceId = inst.id,
                                             context = { shipped = true } })
    assert.same({ { id = inst.id } }, consumed)
    assert.equal("COMPLETED", assert(wf:instance(inst.id)).status)
    local final = assert(wf:context(inst.id))
    assert.is_true(final.approved)
    assert.is_true(final.shipped)
    wf:close()
  end)

  it("gives every success a meta with the status and request id", function()
    local wf = client()
    local inst, meta = wf:start("simple")
    assert.equal(201, meta.status)
    assert.matches("^%x+%-", meta.request_id)
    local _, meta2 = wf:cancel(inst.id)
    assert.equal(202, meta2.status)
  end)

  describe("token", function()
    it("returns the token, its seconds left and its scope", function()
      local wf = client()
      local token, left, scope = wf:token()
      assert.is_string(token)
      assert.is_true(#token > 100)
      assert.is_true(left > 43000 and left <= 43199)
      assert.matches("workflow!b10150%.WORKFLOW_INSTANCE_START", scope)
    end)

    it("is fetched once for many calls", function()
      local wf = client()
      for _ = 1, 5 do assert(wf:definitions()) end
      assert(wf:start("simple"))
      local token = wf:token()
      assert.equal(token, (wf:token()))
      local stats = emu:stats()
      assert.equal(1, stats.token_requests)
      assert.equal(6, stats.api_requests)
    end)

    it("is fetched again when forced", function()
      local wf = client()
      local first = wf:token()
      local second = wf:token(true)
      assert.are_not.equal(first, second)
      assert.equal(2, emu:stats().token_requests)
      assert.has_error(function() wf:token("yes") end,
                       "bad argument #1 to 'token' (boolean expected, got string)")
    end)

    it("is replaced once when the API answers 401, and the call succeeds", function()
      local wf = client()
      assert(wf:definitions())
      emu:expire_tokens()
      local list = assert(wf:definitions())
      assert.equal(3, #list)
      local stats = emu:stats()
      assert.equal(2, stats.token_requests)
      assert.equal(1, stats.api_responses_by_status["401"])
      assert.equal(3, stats.api_requests)
    end)
  end)

  describe("TLS", function()
    it("works with the emulator's CA", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full", { tls = true }),
                                   cafile = emu.ca_file })
      assert.matches("^sapwf client %(https://127%.0%.0%.1:%d+/workflow%-service/rest%)$",
                     tostring(wf))
      assert.equal(3, #assert(wf:definitions()))
    end)

    it("fails with kind tls against another CA, before anything is sent", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full", { tls = true }),
                                   cafile = emu.wrong_ca_file })
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("tls", err.kind)
      assert.equal("not_sent", err.outcome)
      assert.is_false(err.retryable)
      assert.equal(0, emu:stats().api_requests)
    end)

    it("gets tokens with an x509 key over mutual TLS", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("x509", { tls = true }),
                                   cafile = emu.ca_file })
      assert(wf:start("simple"))
      assert.equal(1, emu:stats().token_requests_by_client[
        "sb-sapwf-x509!b1|workflow!b10150"])
    end)

    it("takes cert and key options with \\n escapes, as it takes them in a key", function()
      local key = emu:service_key("x509", { tls = true })
      local wf = assert(sapwf.new{ service_key = key, cafile = emu.ca_file, retries = 0,
                                   cert = (key.uaa.certificate:gsub("\n", "\\n")),
                                   key = (key.uaa.key:gsub("\n", "\\n")) })
      assert.equal(3, #assert(wf:definitions()))
      assert.equal(1, emu:stats().token_requests)
    end)

    it("refuses a cert or key option that is a path, before anything is sent", function()
      local key = emu:service_key("x509", { tls = true })
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(key.uaa.certificate)
      f:close()
      local wf, err = sapwf.new{ service_key = key, cafile = emu.ca_file, cert = path }
      os.remove(path)
      assert.is_nil(wf)
      assert.equal("config", err.kind)
      assert.matches("^option cert is not PEM text", err.message)
      local _, err2 = sapwf.new{ service_key = key, cafile = emu.ca_file, key = "key.pem" }
      assert.matches("^option key is not PEM text", err2.message)
      assert.equal(0, emu:stats().token_requests)
    end)
  end)

  describe("request", function()
    it("sends any call and decodes a JSON answer", function()
      local wf = client()
      local list, meta = assert(wf:request("GET", "/v1/workflow-definitions",
        { query = { ["$top"] = 1, ["$inlinecount"] = "allpages" } }))
      assert.equal(1, #list)
      -- the meta every call returns, and the headers an arbitrary call may need
      assert.equal(200, meta.status)
      assert.matches("^%S+$", meta.request_id)
      assert.equal(3, meta.total)
      assert.equal("3", meta.headers["x-total-count"])
      local file = os.tmpname()
      local bytes, file_meta = assert(wf:request("GET", "/v1/workflow-definitions",
        { to_file = file }))
      os.remove(file)
      assert.is_true(bytes > 0)
      assert.equal(200, file_meta.status)
      assert.matches("^application/json", file_meta.headers["content-type"])
    end)

    it("sends a table body as JSON and a string as is", function()
      local wf = client()
      local inst = assert(wf:request("POST", "/v1/workflow-instances",
                                     { body = { definitionId = "simple", context = { a = 1 } } }))
      assert.equal("RUNNING", inst.status)
      local ok = assert(wf:request("PATCH", "/v1/workflow-instances/" .. inst.id .. "/context",
                                   { body = '{"b":2}' }))
      assert.is_true(ok)
      assert.same({ a = 1, b = 2 }, assert(wf:context(inst.id)))
    end)

    it("returns other content types as text", function()
      local wf = client()
      local zip, meta = assert(wf:request("GET", "/v1/export"))
      assert.equal("application/zip", meta.headers["content-type"])
      assert.equal("PK\5\6", zip:sub(1, 4))
    end)

    it("returns a job from the Location header", function()
      local wf = client()
      local ok, meta = assert(wf:request("POST", "/v1/purge"))
      assert.is_true(ok)
      assert.equal(202, meta.status)
      assert.matches("^/workflow%-service/rest/v1/jobs/", meta.headers["location"])
      -- a second purge while that one runs: SAP's 303, "already running", with that job
      local again, meta2 = wf:request("POST", "/v1/purge")
      assert.is_true(again, tostring(meta2))
      assert.equal(303, meta2.status)
      assert.equal(meta.headers["location"], meta2.headers["location"])
    end)

    it("returns errors with the authority of a known path", function()
      local wf = client("limited")
      local value, err = wf:request("GET", "/v1/workflow-instances/abc/context")
      assert.is_nil(value)
      assert.equal("forbidden", err.kind)
      assert.equal("WORKFLOW_INSTANCE_GET_CONTEXT", err.authority)
      assert.matches("^cf update%-service", err.hint)
      local _, err2 = wf:request("PATCH", "/v1/workflow-instances/abc", { body = {} })
      assert.equal("one of WORKFLOW_INSTANCE_CANCEL, WORKFLOW_INSTANCE_SUSPEND, "
                   .. "WORKFLOW_INSTANCE_RETRY_RESUME", err2.authority)
      assert.is_nil(err2.hint)
      local _, err3 = client():request("GET", "/v1/nothing")
      assert.equal("not_found", err3.kind)
      -- written with one trailing slash less (SAP's path is /v1/messages/) or more
      local _, err4 = wf:request("POST", "/v1/messages", { body = { definitionId = "m",
                                                                    workflowInstanceId = "x" } })
      assert.same({ "forbidden", "MESSAGE_SEND" }, { err4.kind, err4.authority })
      local _, err5 = wf:request("GET", "/v1/workflow-instances/abc/context/")
      assert.same({ "forbidden", "WORKFLOW_INSTANCE_GET_CONTEXT" }, { err5.kind, err5.authority })
    end)

    it("refuses a body that is not JSON before sending", function()
      local wf = client()
      local _, err = wf:request("POST", "/v1/workflow-instances", { body = { f = print } })
      assert.equal("invalid", err.kind)
      assert.equal("body.f: a function is not JSON", err.message)
      assert.equal(0, emu:stats().api_requests)
    end)

    it("raises for a bad method, path or option", function()
      local wf = client()
      assert.has_error(function() wf:request("HEAD", "/v1/x") end,
        "bad argument #1 to 'request' (method 'HEAD' is not one of GET, POST, PUT, PATCH, DELETE)")
      assert.has_error(function() wf:request("GET", "v1/x") end,
        "bad argument #2 to 'request' (path must start with '/')")
      assert.has_error(function() wf:request("GET", "/v1/x\r\nX-Evil: 1") end,
        "bad argument #2 to 'request' (path contains white space or control characters)")
      assert.has_error(function() wf:request("GET", "/v1/x", { qeury = {} }) end,
        "bad argument #3 to 'request' (unknown option 'qeury' (query, body, accept, to_file))")
      assert.has_error(function() wf:request("GET", "/v1/x", { body = 5 }) end,
        "bad argument #3 to 'request' (body: table or string expected, got number)")
    end)
  end)

  describe("closing", function()
    local calls = {
      { "token" }, { "definitions" }, { "definition", "x" }, { "definition_versions", "x" },
      { "definition_version", "x", 1 }, { "definition_model", "x" }, { "sample_context", "x" },
      { "undeploy", "x" }, { "start", "simple" }, { "instances" }, { "instance", "x" },
      { "context", "x" }, { "update_context", "x", {} }, { "replace_context", "x", {} },
      { "cancel", "x" }, { "suspend", "x" }, { "resume", "x" }, { "attributes", "x" },
      { "execution_logs", "x" }, { "error_messages", "x" }, { "roles", "x" },
      { "update_roles", "x", {} }, { "attachments", "x" }, { "update_attachments", "x", {} },
      { "delete_instances", { "x" } }, { "tasks" }, { "task", "x" }, { "task_context", "x" },
      { "task_attributes", "x" }, { "task_attachments", "x" }, { "task_form", "x" },
      { "task_form_model", "x" }, { "complete_task", "x" }, { "update_task", "x", {} },
      { "task_definitions" }, { "forms" }, { "job", "x" }, { "each_instance" },
      { "each_task" }, { "request", "GET", "/v1/forms" },
      { "send_message", { definitionId = "m", workflowInstanceId = "x" } },
    }

    it("makes every method raise, pointing at the caller", function()
      local wf = client()
      wf:close()
      wf:close()                                  -- idempotent
      assert.equal("sapwf client (closed)", tostring(wf))
      for _, call in ipairs(calls) do
        local name = call[1]
        assert.is_function(wf[name], name)
        local ok, msg = pcall(function()
          local r = wf[name](wf, select(2, (table.unpack or unpack)(call)))
          return r
        end)
        assert.is_false(ok, name)
        assert.matches("10%-client_spec%.lua:%d+: attempt to use a closed sapwf client$", msg)
      end
      assert.equal(0, emu:stats().api_requests)
    end)

    it("raises for a call on something else than a client", function()
      local wf = client()
      assert.has_error(function() wf.start(nil, "simple") end,
        "calling 'start' on bad self (sapwf client expected, got nil)")
      assert.has_error(function() wf.instances({}) end,
        "calling 'instances' on bad self (sapwf client expected, got table)")
    end)

    it("is what __gc does, and a dropped client is collected", function()
      local wf = client()
      local mt = getmetatable(wf)
      assert.is_function(mt.__gc)
      assert.equal(mt.__gc, mt.__gc)
      mt.__gc(wf)
      assert.equal("sapwf client (closed)", tostring(wf))

      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = client()
      assert(weak[1]:definitions())
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)

    if _VERSION == "Lua 5.4" then
      it("happens at the end of a <close> block (Lua 5.4)", function()
        local chunk = assert(load([[
          local sapwf, key = ...
          local kept
          do
            local wf <close> = assert(sapwf.new{ service_key = key })
            assert(wf:definitions())
            kept = wf
          end
          return kept
        ]]))
        local wf = chunk(sapwf, emu:service_key("full"))
        assert.equal("sapwf client (closed)", tostring(wf))
        assert.has_error(function() wf:definitions() end,
                         "attempt to use a closed sapwf client")
      end)
    end
  end)

  describe("arguments", function()
    it("raise naming the argument and pointing at the caller", function()
      local wf = client()
      local ok, msg = pcall(function() local r = wf:start(nil); return r end)
      assert.is_false(ok)
      assert.matches("10%-client_spec%.lua:%d+: bad argument #1 to 'start' %(string expected, "
                     .. "got nil%)$", msg)
      local cases = {
        { function() wf:start("simple", "ctx") end,
          "bad argument #2 to 'start' (table expected, got string)" },
        { function() wf:start("") end, "bad argument #1 to 'start' (empty definition id)" },
        { function() wf:instance(42) end,
          "bad argument #1 to 'instance' (string expected, got number)" },
        { function() wf:instance("") end,
          "bad argument #1 to 'instance' (id is empty and cannot name a resource)" },
        { function() wf:context("..") end,
          "bad argument #1 to 'context' (id '..' cannot name a resource)" },
        { function() wf:context(".") end,
          "bad argument #1 to 'context' (id '.' cannot name a resource)" },
        { function() wf:definition_version("orderapproval", 1.5) end,
          "bad argument #2 to 'definition_version' (version must be a non-negative integer)" },
        { function() wf:definition_version("orderapproval", {}) end,
          "bad argument #2 to 'definition_version' (string or integer expected, got table)" },
        { function() wf:update_context("x", nil) end,
          "bad argument #2 to 'update_context' (table expected, got nil)" },
        { function() wf:instances("status=RUNNING") end,
          "bad argument #1 to 'instances' (table expected, got string)" },
        { function() wf:delete_instances({ ("a"):rep(36), 5 }) end,
          "bad argument #1 to 'delete_instances' (ids[2]: non-empty string expected, got number)" },
        { function() wf:update_roles("x", { viewers = "a" }) end,
          "bad argument #2 to 'update_roles' (unknown field 'viewers'; known: adminGroups, "
          .. "adminUsers, contextAdminGroups, contextAdminUsers, contextViewerGroups, "
          .. "contextViewerUsers, viewerGroups, viewerUsers)" },
        { function() wf:update_task("x", { recipientUsers = { "a", 1 } }) end,
          "bad argument #2 to 'update_task' (recipientUsers[2]: string expected, got number)" },
        { function() wf:update_task("x", { recipientGroups = { "a,b" } }) end,
          "bad argument #2 to 'update_task' (recipientGroups[1]: a name cannot hold a comma "
          .. "(the service splits the list at commas))" },
        { function() wf:update_task("x", { recipientUsers = { "a", "" } }) end,
          "bad argument #2 to 'update_task' (recipientUsers[2]: empty name)" },
        -- SAP's enums: a lower-case "completed" would go as an update, under another authority
        { function() wf:update_task("x", { status = "completed" }) end,
          "bad argument #2 to 'update_task' (status: \"COMPLETED\" expected, got 'completed')" },
        { function() wf:update_task("x", { priority = "URGENT" }) end,
          "bad argument #2 to 'update_task' (priority: \"VERY_HIGH\", \"HIGH\", \"MEDIUM\" "
          .. "or \"LOW\" expected, got 'URGENT')" },
        -- a set, or an array with holes or other keys, would be read as fewer items than
        -- were meant: that work would be dropped without a word ("" clears a role list)
        { function() wf:update_roles("x", { viewerUsers = { ["ann@x"] = true } }) end,
          "bad argument #2 to 'update_roles' (viewerUsers: an array expected, got "
          .. "a table with key 'ann@x')" },
        { function() wf:update_task("x", { recipientGroups = { "a", "b", nil, "d" } }) end,
          "bad argument #2 to 'update_task' (recipientGroups: an array expected, "
          .. "got " .. (#{ "a", "b", nil, "d" } == 4 and "one with holes)"
                        or "a table with key 4)") },
        { function() wf:delete_instances({ ["id-a"] = true }) end,
          "bad argument #1 to 'delete_instances' (an array expected, got a table with key "
          .. "'id-a')" },
        { function() wf:delete_instances({ "id-a", second = "id-b" }) end,
          "bad argument #1 to 'delete_instances' (an array expected, got a table with key "
          .. "'second')" },
        { function() wf:start_many({ order1 = { definitionId = "simple" } }) end,
          "bad argument #1 to 'start_many' (an array expected, got a table with key "
          .. "'order1')" },
        { function() wf:map({ a = 1 }, function() end) end,
          "bad argument #1 to 'map' (an array expected, got a table with key 'a')" },
        { function() wf:instances{ status = { "RUNNING", also = "ERRONEOUS" } } end,
          "bad argument #1 to 'instances' (query 'status': an array expected, got a table "
          .. "with key 'also')" },
        { function() wf:request("GET", "/v1/forms", { query = { id = { x = "a" } } }) end,
          "bad argument #3 to 'request' (query 'id': an array expected, got a table with "
          .. "key 'x')" },
      }
      for _, case in ipairs(cases) do
        assert.has_error(case[1], case[2])
      end
      assert.equal(0, emu:stats().api_requests)
    end)
  end)
end)
