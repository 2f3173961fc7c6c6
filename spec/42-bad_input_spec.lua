-- Bad input, call by call: every public function with wrong types, nil, empty and huge
-- strings, ids with / ? # .. and NUL bytes and odd Unicode, contexts that are not JSON.
-- Wrong types raise naming the argument; data the service cannot take comes back as nil,
-- err; an id never addresses anything but the operation it is an id for; nothing is sent
-- for what raises or cannot be encoded; nothing crashes.
local sapwf = require "sapwf"
local client = require "sapwf.client"
local operations = require "sapwf.operations"
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

-- The argument kinds of every method. id/string: a string; version: string or integer;
-- version?: that or nil; q/opts: a table or nil; table: a table; boolean?: a boolean or nil;
-- method, path: wf:request's strings.
local SIGNATURES = {
  definitions = { "q" }, definition = { "id" }, definition_versions = { "id", "q" },
  definition_version = { "id", "version" }, definition_model = { "id", "version?" },
  sample_context = { "id", "version?" }, undeploy = { "id", "opts" },
  start = { "string", "opts", "opts" }, instances = { "q" }, instance = { "id", "opts" },
  context = { "id" }, update_context = { "id", "table" }, replace_context = { "id", "table" },
  cancel = { "id" }, suspend = { "id" }, resume = { "id" }, attributes = { "id" },
  execution_logs = { "id" }, error_messages = { "id" }, roles = { "id" },
  update_roles = { "id", "table" }, attachments = { "id" },
  update_attachments = { "id", "table" }, delete_instances = { "table" },
  send_message = { "table" }, tasks = { "q" }, task = { "id", "opts" },
  task_context = { "id" }, task_attributes = { "id" }, task_attachments = { "id" },
  complete_task = { "id", "opts" }, update_task = { "id", "table" },
  task_definitions = { "q" }, task_form = { "id" }, task_form_model = { "id" },
  forms = { "q" }, job = { "id" }, each_instance = { "q" }, each_task = { "q" },
  token = { "boolean?" }, request = { "method", "path", "opts" },
}
-- Methods another spec owns the argument checks of (spec/19; spec/50, the batch calls;
-- spec/51, wf:export, which writes the file it is given).
local ELSEWHERE = { close = true, start_many = true, map = true, start_each = true,
                    map_each = true, export = true }

local ACCEPTS = {
  id = { string = true }, string = { string = true },
  version = { string = true, number = true }, ["version?"] = { ["nil"] = true, string = true,
  number = true }, q = { ["nil"] = true, table = true }, opts = { ["nil"] = true, table = true },
  table = { table = true }, ["boolean?"] = { ["nil"] = true, boolean = true },
  method = { string = true }, path = { string = true },
}
local SAMPLES = { { "nil", nil }, { "boolean", true }, { "number", 1 }, { "string", "x" },
  { "table", {} }, { "function", print }, { "thread", coroutine.create(function() end) },
  { "userdata", io.stdout } }
-- A valid value per kind, for the other arguments of a call.
local VALID = { id = "x", string = "simple", version = 1, ["version?"] = nil, q = nil,
  opts = nil, table = { viewerUsers = "a" }, ["boolean?"] = nil, method = "GET",
  path = "/v1/forms" }

describe("bad input", function()
  local emu, wf

  setup(function()
    emu = helpers.start_emulator()
    wf = assert(sapwf.new{ service_key = emu:service_key("full"), retries = 0 })
  end)
  teardown(function()
    if wf then wf:close() end
    if emu then emu:stop() end
  end)

  local function strip_position(message)
    return (tostring(message):gsub("^[^\n]-:%d+: ", "", 1))
  end

  it("every method has a signature here (a new one must be added)", function()
    for name in pairs(client.methods) do
      assert.is_true(SIGNATURES[name] ~= nil or ELSEWHERE[name] == true, name)
    end
  end)

  it("a wrong type, or nil where a value is needed, raises naming the argument", function()
    emu:reset()
    local checked = 0
    for name, kinds in pairs(SIGNATURES) do
      for position, kind in ipairs(kinds) do
        for _, sample in ipairs(SAMPLES) do
          if not ACCEPTS[kind][sample[1]] then
            local args = {}
            for i, other in ipairs(kinds) do args[i] = VALID[other] end
            args[position] = sample[2]
            local ok, err = pcall(wf[name], wf, R.unpack(args, 1, #kinds))
            assert.is_false(ok, name .. " #" .. position .. " " .. sample[1])
            assert.matches("^bad argument #" .. position .. " to '" .. name .. "'",
                           strip_position(err))
            checked = checked + 1
          end
        end
      end
    end
    assert.is_true(checked > 150)
    local stats = emu:stats()
    assert.equal(0, stats.api_requests)
    assert.equal(0, stats.token_requests)
  end)

  it("an option value the C core refuses raises at the caller of new, naming the option",
     function()
    local key = emu:service_key("full")
    helpers.assert_raises_here({
      { function() sapwf.new{ service_key = key, user_agent = "a\nb" } end,
        "bad option 'user_agent' (visible ASCII and spaces expected: a header value cannot "
        .. "carry CR, LF or other control bytes)" },
      { function() sapwf.new{ service_key = key, timeout = 1e9 } end,
        "bad option 'timeout' (number from 0 to 2147483 expected)" },
      { function() sapwf.new{ service_key = key, headers = { ["Bad Name"] = "x" } } end,
        "bad option 'headers' (a header name is not a token: letters, digits and "
        .. "!#$%&'*+-.^_`|~ only)" },
    }, "42%-bad_input_spec%.lua$")
  end)

  it("a method called without its client, or on a closed one, raises at the caller",
     function()
    local cases = {}
    for name in pairs(SIGNATURES) do
      cases[#cases + 1] = { function() wf[name]() end,
        "calling '" .. name .. "' on bad self (sapwf client expected, got nil)" }
      cases[#cases + 1] = { function() wf[name]({}) end,
        "calling '" .. name .. "' on bad self (sapwf client expected, got table)" }
    end
    helpers.assert_raises_here(cases, "42%-bad_input_spec%.lua$")
    local closed = assert(sapwf.new{ service_key = emu:service_key("full") })
    closed:close()
    closed:close()                                       -- idempotent
    cases = {}
    for name in pairs(SIGNATURES) do
      cases[#cases + 1] = { function() closed[name](closed, "x", {}) end,
                            "attempt to use a closed sapwf client" }
    end
    helpers.assert_raises_here(cases, "42%-bad_input_spec%.lua$")
    assert.equal("sapwf client (closed)", tostring(closed))
  end)

  describe("ids", function()
    -- Strings that are ids for the API (escaped, sent): the server says what it thinks of
    -- them, and the request reaches the operation the id belongs to, no other.
    local ODD = { "a/b", "a?b=c", "a#b", "..x", ".x/y", "%2F", "a b", "ü", "日本",
      "\226\128\174abc", "\226\128\139", "😀", "\255\254", "\r\nX-Injected: 1",
      string.rep("i", 300) }

    local function key(op) return op.method .. " " .. op.path end

    -- The methods with an id as argument 1, and what else they need.
    local REST = { definition_version = { 1 }, update_context = { { a = 1 } },
      replace_context = { { a = 1 } }, update_roles = { { viewerUsers = "a" } },
      update_attachments = { {} }, update_task = { { subject = "s" } } }
    local ID_CALLS = {}
    for name, kinds in pairs(SIGNATURES) do
      if kinds[1] == "id" then
        ID_CALLS[#ID_CALLS + 1] = { name = name, rest = REST[name] or {} }
      end
    end
    table.sort(ID_CALLS, function(a, b) return a.name < b.name end)

    -- The operation a method with an id (and those extra arguments) calls.
    local function op_of(name)
      local by_name = operations.by_name
      if name == "definition_model" then return by_name.definition_model end
      if name == "sample_context" then return by_name.sample_context end
      return by_name[name]
    end

    it("are escaped: each call reaches its own operation, never another path", function()
      emu:reset()
      local expected = {}
      for _, call in ipairs(ID_CALLS) do
        local op = assert(op_of(call.name), call.name)
        for _, id in ipairs(ODD) do
          local value, err = wf[call.name](wf, id, R.unpack(call.rest))
          if value == nil then
            assert.is_true(sapwf.is_error(err), call.name)
            assert.is_true(err.kind == "not_found" or err.kind == "invalid", call.name .. ": "
                           .. tostring(err))
            assert.is_nil(tostring(err):find("\n"), "an error line holds a line break")
          end
          expected[key(op)] = (expected[key(op)] or 0) + 1
        end
      end
      local seen = emu:stats().api_requests_by_operation
      assert.same(expected, seen)
      assert.is_nil(seen.unknown)
    end)

    it("'', '.', '..' and ids with them between slashes cannot name a resource: they " ..
       "raise, nothing is sent", function()
      emu:reset()
      for _, call in ipairs(ID_CALLS) do
        for _, id in ipairs({ "", ".", "..", "../x", "./x", "x/..", "a\\..\\b" }) do
          local ok, err = pcall(wf[call.name], wf, id, R.unpack(call.rest))
          assert.is_false(ok)
          assert.matches("^bad argument #1 to '" .. call.name .. "' %(id", strip_position(err))
        end
      end
      assert.equal(0, emu:stats().api_requests)
    end)

    it("NUL bytes and huge ids: an error from the server, no crash", function()
      for _, id in ipairs({ "\0", "a\0b", string.rep("x", 100000) }) do
        local value, err = wf:instance(id)
        assert.is_nil(value)
        assert.is_true(err.kind == "invalid" or err.kind == "not_found", tostring(err))
        assert.is_true(err.status == 400 or err.status == 404 or err.status == 414, tostring(err))
        assert.is_true(#tostring(err) < 1000)
      end
    end)

    it("a definition id that is odd text: escaped in the JSON body, a clear answer", function()
      emu:reset()
      for _, id in ipairs({ "a\"b", "a\0b", "\226\128\174x", "😀", "</script>", "a\\u0000" }) do
        local value, err = wf:start(id)
        assert.is_nil(value)
        assert.equal("not_found", err.kind, tostring(err))
      end
      local _, err = wf:start("\255")
      if utf8 then                 -- caught before sending where Lua can check UTF-8
        assert.equal("invalid", err.kind)
        assert.equal("not_sent", err.outcome)
        assert.equal(6, emu:stats().api_requests)
      else                         -- else the service answers
        assert.is_true(err.kind == "invalid" or err.kind == "not_found", tostring(err))
      end
      assert.equal(0, emu:stats().instances_started)
    end)
  end)

  describe("contexts that are not JSON", function()
    local cycle = {}
    cycle.again = cycle
    local deep = {}
    do local t = deep for _ = 1, 5000 do t.x = {} t = t.x end end
    local CONTEXTS = {
      { "a function", { f = print }, ".f: a function is not JSON" },
      { "a cycle", cycle, ".again: cycle" },
      { "NaN", { n = 0 / 0 }, ".n: NaN is not JSON" },
      { "infinity", { n = -math.huge }, ".n: infinity is not JSON" },
      { "mixed keys", { 1, x = 2 }, ": table mixes array indexes" },
      { "a sparse array", { [1] = 1, [5] = 5 }, ": sparse array" },
      { "a boolean key", { [true] = 1 }, ": key true" },
      { "a userdata", { u = io.stdout }, ".u: a userdata is not JSON" },
      { "a thread", { c = coroutine.create(function() end) }, ".c: a thread is not JSON" },
      { "nesting 5000 deep", deep, "nested more than 1000 levels deep" },
    }
    if utf8 then              -- sapwf.json checks UTF-8 where Lua can (5.3 and later)
      CONTEXTS[#CONTEXTS + 1] = { "invalid UTF-8", { s = "\195\040" },
                                  ".s: string is not valid UTF-8" }
      CONTEXTS[#CONTEXTS + 1] = { "a key of invalid UTF-8", { ["\255"] = 1 },
                                  "key is not valid UTF-8" }
    end
    -- name, call, the root the error message names
    local CALLS = {
      { "start", function(ctx) return wf:start("simple", ctx) end, "context" },
      { "update_context", function(ctx) return wf:update_context("x", ctx) end, "patch" },
      { "replace_context", function(ctx) return wf:replace_context("x", ctx) end, "context" },
      { "complete_task", function(ctx) return wf:complete_task("x", ctx) end, "context" },
      { "send_message", function(ctx)
        return wf:send_message{ definitionId = "m", workflowInstanceId = "x", context = ctx }
      end, "message.context" },
      { "request", function(ctx) return wf:request("POST", "/v1/purge", { body = ctx }) end,
        "body" },
    }

    for _, call in ipairs(CALLS) do
      it(call[1] .. ": nil, err (kind invalid, not sent) naming the place, nothing sent", function()
        emu:reset()
        for _, case in ipairs(CONTEXTS) do
          local value, err = call[2](case[2])
          assert.is_nil(value, case[1])
          assert.equal("invalid", err.kind, case[1])
          assert.equal("sapwf.json", err.code)
          assert.equal("not_sent", err.outcome)
          assert.is_false(err.retryable)
          assert.matches(case[3], err.message, 1, true)
          assert.equal(call[3], err.message:sub(1, #call[3]), err.message:sub(1, 80))
        end
        assert.equal(0, emu:stats().api_requests)
      end)
    end

    -- The service takes a context (and attachments) only as a JSON object: as an array it
    -- refuses it once sent (422, 400). So it is refused before, naming what.
    it("a context that would go as a JSON array: nil, err naming it, nothing sent", function()
      emu:reset()
      local ARRAYS = { { "a sequence", { "a", "b" } }, { "sapwf.array{}", sapwf.array{} },
                       { "a decoded array", require("sapwf.json").decode("[1]") } }
      local calls = {
        { "context", function(v) return wf:start("simple", v) end },
        { "attachments", function(v) return wf:start("simple", {}, v) end },
        { "patch", function(v) return wf:update_context("x", v) end },
        { "context", function(v) return wf:replace_context("x", v) end },
        { "attachments", function(v) return wf:update_attachments("x", v) end },
        { "context", function(v) return wf:complete_task("x", v) end },
        { "message.context", function(v)
          return wf:send_message{ definitionId = "m", workflowInstanceId = "x", context = v }
        end },
        { "fields.context", function(v) return wf:update_task("x", { context = v }) end },
        { "fields.attachments", function(v) return wf:update_task("x", { attachments = v }) end },
        { "context", function(v)
          return wf:start_many({ { definitionId = "simple", context = v } })[1]
        end },
      }
      for _, case in ipairs(ARRAYS) do
        for _, call in ipairs(calls) do
          local value, err = call[2](case[2])
          if err == nil then value, err = nil, value end         -- start_many's result
          assert.is_nil(value, case[1])
          assert.is_true(sapwf.is_error(err), case[1] .. " " .. call[1])
          assert.same({ "invalid", "sapwf.json", "not_sent" }, { err.kind, err.code, err.outcome })
          assert.equal(call[1] .. ": a JSON object expected, got an array", err.message)
        end
      end
      -- an empty table is an object, as sapwf.json writes it
      assert.is_truthy(wf:start("simple", {}))
      assert.equal(1, emu:stats().api_requests)
    end)

    it("a huge context is sent whole (the server decides), not cut", function()
      emu:reset()
      local big = string.rep("z", 4 * 1024 * 1024)
      local inst = assert(wf:start("simple", { big = big }))
      assert.equal(#big, #assert(wf:context(inst.id)).big)
    end)
  end)

  describe("queries", function()
    it("unknown names and values of the wrong type raise; odd text is escaped", function()
      emu:reset()
      local raising = {
        { wf.instances, { statuz = "RUNNING" }, "unknown" },
        { wf.instances, { status = print }, "query 'status'" },
        { wf.instances, { businessKey = { {} } }, "query 'businessKey' item 1" },
        { wf.tasks, { top = {} }, "top" },
        { wf.each_instance, { top = 0 }, "top must be an integer from 1 to 1000" },
        { wf.each_task, { skip = 4001 }, "skip must be an integer from 0 to 4000" },
        -- the list calls too: the service would answer 400, to $top=1e+20 as well
        { wf.instances, { top = 1001 }, "top must be an integer from 0 to 1000" },
        { wf.instances, { top = 2^63 }, "top must be an integer from 0 to 1000" },
        { wf.definitions, { skip = 1e20 }, "skip must be an integer from 0 to 4000" },
        { wf.tasks, { ["$skip"] = -1 }, "skip must be an integer from 0 to 4000" },
      }
      for _, case in ipairs(raising) do
        local ok, err = pcall(case[1], wf, case[2])
        assert.is_false(ok)
        assert.matches(case[3], strip_position(err), 1, true)
      end
      assert.equal(0, emu:stats().api_requests)
      local list = assert(wf:instances{ businessKey = "a&b=c#d?\0ü", containsText = "%25" })
      assert.equal(0, #list)
      assert.equal(1, emu:stats().api_requests_by_operation["GET /v1/workflow-instances"])
    end)
  end)

  describe("wf:request", function()
    it("checks method, path and options before sending anything", function()
      emu:reset()
      local cases = {
        { { "get", "/v1/forms" }, "#1 to 'request' (method 'get' is not one of" },
        { { "TRACE", "/v1/forms" }, "#1 to 'request' (method 'TRACE'" },
        { { "GET", "v1/forms" }, "#2 to 'request' (path must start with '/')" },
        { { "GET", "/v1/forms x" }, "#2 to 'request' (path contains white space" },
        { { "GET", "/v1/forms\r\nX: y" }, "#2 to 'request' (path contains white space" },
        { { "GET", "/v1/forms\0" }, "#2 to 'request' (path contains white space" },
        { { "GET", "/v1/forms", { qurey = {} } }, "#3 to 'request' (unknown option 'qurey'" },
        { { "POST", "/v1/purge", { body = 5 } }, "#3 to 'request' (body: table or string" },
        -- no filter at all would widen the query
        { { "GET", "/v1/workflow-instances", { query = { status = {} } } },
          "#3 to 'request' (query 'status' is an empty list)" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(wf.request, wf, R.unpack(case[1]))
        assert.is_false(ok)
        assert.matches(case[2], strip_position(err), 1, true)
      end
      assert.equal(0, emu:stats().api_requests)
    end)
  end)

  describe("sapwf.new and sapwf.from_env", function()
    it("raise for wrong option types and unknown names, naming the option", function()
      local key = emu:service_key("full")
      local cases = {
        { 5, "bad argument #1 to 'new' (table expected, got number)" },
        { { service_key = 5 }, "bad option 'service_key' (string or table expected, got number)" },
        { { service_key = key, timout = 1 }, "bad option 'timout' (unknown option)" },
        { { service_key = key, timeout = "1" },
          "bad option 'timeout' (number expected, got string)" },
        { { service_key = key, timeout = -1 }, "bad option 'timeout' (number from 0 to" },
        { { service_key = key, verify = "no" },
          "bad option 'verify' (boolean expected, got string)" },
        { { service_key = key, max_response = 0 }, "bad option 'max_response' (positive integer" },
        { { service_key = key, max_response = 1.5 },
          "bad option 'max_response' (positive integer" },
        { { service_key = key, cafile = "a\0b" }, "bad option 'cafile' (string without NUL bytes" },
        { { service_key = key, [1] = true }, "bad option '1' (unknown option)" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(sapwf.new, case[1])
        assert.is_false(ok)
        assert.matches(case[2], strip_position(err), 1, true)
      end
      local ok, err = pcall(sapwf.from_env, 5)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'from_env' (string expected, got number)", err, 1, true)
      ok, err = pcall(sapwf.from_env, "x", 5)
      assert.matches("bad argument #2 to 'from_env' (table expected, got number)", err, 1, true)
    end)

    it("keys that cannot be used give nil and a config error", function()
      local key = emu:service_key("full")
      local no_url = emu:service_key("full")
      no_url.endpoints = nil
      local cases = {
        { service_key = "{" }, { service_key = "{}" },
        { service_key = "[1,2]" }, { service_key = "/nonexistent/key.json" },
        { service_key = string.rep("k", 100000) }, { service_key = "\0" },
        { service_key = no_url }, { service_key = {} },
      }
      for _, opts in ipairs(cases) do
        local value, err = sapwf.new(opts)
        assert.is_nil(value)
        assert.equal("config", err.kind)
        assert.is_true(#tostring(err) < 600, "a long message")
      end
      -- a CA file that cannot be read: said now, not as a TLS error at the first https call
      -- (and never over http)
      for _, path in ipairs({ "/nonexistent/ca.pem", "/tmp" }) do
        local wf, cerr = sapwf.new{ service_key = key, cafile = path }
        assert.is_nil(wf, path)
        assert.equal("config", cerr.kind)
        assert.equal("cafile cannot be read: " .. path .. ": "
          .. (path == "/tmp" and "Is a directory" or "No such file or directory"), cerr.message)
      end
      -- an empty option is the caller's slip, not the key's: it raises, naming the option
      local ok, err = pcall(sapwf.new, { service_key = key, api_url = "" })
      assert.is_false(ok)
      assert.matches("bad option 'api_url' (non-empty string expected)", err, 1, true)
      ok, err = pcall(sapwf.new, { service_key = "" })
      assert.is_false(ok)
      assert.matches("bad option 'service_key' (non-empty string expected)", err, 1, true)
    end)
  end)
end)
