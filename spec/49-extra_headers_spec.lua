-- The headers option: extra headers for every API call (the key of an API Management proxy
-- or of an SAP Build Process Automation environment in front of the service). They reach the
-- API on single calls and in batches, never the token endpoint's error texts; a header
-- sapwf cannot send raises naming the header and never its value, which is often a key and
-- shows nowhere.
local helpers = require "spec.helpers"
local sapwf = require "sapwf"

describe("the headers option", function()
  local emu, key
  local API_KEY = "gw-" .. ("9"):rep(24)

  setup(function()
    emu = helpers.start_emulator()
    key = emu:service_key("full")
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    emu:api_key("APIKey", API_KEY)
  end)

  it("leaves sapwf's User-Agent as the README says: sapwf/<version> unless user_agent is given",
     function()
    -- the gateway check of the emulator, on the User-Agent: it answers 401 to any other
    emu:api_key("User-Agent", "sapwf/" .. sapwf.version)
    local wf = assert(sapwf.new{ service_key = key })
    assert(wf:definitions())
    wf:close()
    local own = assert(sapwf.new{ service_key = key, user_agent = "orders-import/2.1",
                                  retries = 0 })
    local _, err = own:definitions()
    assert.equal(401, err and err.status)
    own:close()
  end)

  it("never reaches the token endpoint: not on the first token, a refresh or a batch's",
     function()
    local wf = assert(sapwf.new{ service_key = key, headers = { APIKey = API_KEY } })
    assert(wf:definitions())
    assert(wf:token(true))                     -- a fetch of its own
    emu:expire_tokens()                        -- and the renewal after a 401
    local items = {}
    for i = 1, 6 do items[i] = { definitionId = "simple", context = { i = i } } end
    for i, r in ipairs(wf:start_many(items, { concurrency = 3 })) do
      assert.is_false(sapwf.is_error(r), "item " .. i .. ": " .. tostring(r))
    end
    local stats = emu:stats()
    assert.is_true(stats.token_requests >= 3, "token requests: " .. stats.token_requests)
    assert.equal(0, stats.token_requests_with_api_key)
    wf:close()
  end)

  it("is sent with every call; without it the gateway answers 401", function()
    local plain = assert(sapwf.new{ service_key = key, retries = 0 })
    local _, err = plain:definitions()
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    plain:close()
    local events = {}
    local wf = assert(sapwf.new{ service_key = key, headers = { APIKey = API_KEY },
                                 log = function(e) events[#events + 1] = e end })
    local list = assert(wf:definitions())
    assert.equal(3, #list)
    local inst = assert(wf:start("simple", { n = 1 }))
    assert.equal(inst.id, assert(wf:instance(inst.id)).id)
    -- in batches too: every slot's request carries it
    local items = {}
    for i = 1, 12 do items[i] = { definitionId = "simple", context = { i = i } } end
    for i, r in ipairs(wf:start_many(items, { concurrency = 4 })) do
      assert.is_false(sapwf.is_error(r), "item " .. i .. ": " .. tostring(r))
    end
    -- and it is never shown
    assert.is_nil(tostring(wf):find(API_KEY, 1, true))
    local _, missing = wf:instance("00000000-0000-4000-8000-000000000000")
    assert.equal("not_found", missing.kind)
    for _, text in ipairs({ tostring(missing), require("cjson").encode(events) }) do
      assert.is_nil(text:find(API_KEY, 1, true))
    end
    wf:close()
  end)

  it("belongs to the client: a key rotated at the gateway needs a client with the new one", function()
    local wf = assert(sapwf.new{ service_key = key, headers = { APIKey = API_KEY } })
    assert(wf:definitions())
    emu:api_key("APIKey", "rotated")
    local _, err = wf:definitions()
    assert.equal(401, err.status)
    local rotated = assert(sapwf.new{ service_key = key, headers = { APIKey = "rotated" } })
    assert(rotated:definitions())
    wf:close()
    rotated:close()
  end)

  it("a server's text that quotes a value: redacted in the error, of a call and a batch's",
     function()
    local cjson = require "cjson"
    local wf = assert(sapwf.new{ service_key = key, retries = 0,
                                 headers = { APIKey = API_KEY, ["X-Other"] = "other-value-77",
                                             ["X-Region"] = "eu" } })
    -- a value under 8 bytes (a region, a flag) is no secret: taking it out would garble text
    emu:fault{ fault = "body", status = 400, times = -1, method = "GET", body = cjson.encode{
      error = { message = "bad key " .. API_KEY .. " with other-value-77 in eu" } } }
    local _, err = wf:definitions()
    local mapped = wf:map({ 1 }, function(w) return w:definitions() end)
    emu:clear_faults()
    for _, e in ipairs({ err, mapped[1] }) do
      assert.equal("invalid", e.kind)
      assert.equal("bad key [redacted] with [redacted] in eu", e.message)
      assert.is_nil(tostring(e):find(API_KEY, 1, true))
    end
    wf:close()
  end)

  it("raises for a header sapwf cannot send, naming it and never the value", function()
    local secret = "s3cr3t-" .. ("x"):rep(12)
    local cases = {
      { { Authorization = "Bearer " .. secret }, "header 'Authorization' is sapwf's own" },
      { { ["content-type"] = secret }, "header 'content-type' is sapwf's own" },
      { { APIKey = secret .. "\r\nX-Injected: 1" }, "header 'APIKey': the value must be visible "
        .. "ASCII and spaces" },
      { { APIKey = secret .. "\0" }, "header 'APIKey': the value must be visible ASCII" },
      { { ["Bad Name"] = secret }, "a header name is not a token" },
      { { [1] = secret }, "header names must be strings, got number" },
      { { APIKey = 42 }, "header 'APIKey': string expected, got number" },
    }
    for _, case in ipairs(cases) do
      local ok, message = pcall(sapwf.new, { service_key = key, headers = case[1] })
      assert.is_false(ok)
      message = tostring(message)
      assert.matches("bad option 'headers' (" .. case[2], message, 1, true)
      assert.is_nil(message:find(secret, 1, true), message)
    end
    local ok, message = pcall(sapwf.new, { service_key = key, headers = "APIKey: x" })
    assert.is_false(ok)
    assert.matches("bad option 'headers' (table expected, got string)", message, 1, true)
    assert.equal(0, emu:stats().token_requests)
  end)
end)
