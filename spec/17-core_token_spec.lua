-- sapwf.core with a token given from outside: auto_token = false and client:set_token, what
-- sapwf.ngx builds on (one token fetched for many clients). The emulator counts every token
-- request, so "fetched nothing" is checked, not assumed.
local core = require "sapwf.core"
local helpers = require "spec.helpers"

describe("sapwf.core without auto_token", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function core_opts(name, extra) return helpers.core_options(emu, name, extra) end

  local function token_requests() return emu:stats().token_requests end

  it("fetches no token by itself: a call without one fails before anything is sent", function()
    local c = core.new(core_opts(nil, { auto_token = false }))
    local status, err = c:request("GET", "/v1/workflow-definitions")
    assert.is_nil(status)
    assert.equal("auth", err.kind)
    assert.equal("token", err.phase)
    assert.is_false(err.sent)
    assert.matches("set_token", err.message)
    local t, terr = c:token()
    assert.is_nil(t)
    assert.equal("auth", terr.kind)
    assert.equal(0, token_requests())
    assert.equal(0, emu:stats().api_requests)
    c:close()
  end)

  it("fetches when forced, and then uses that token", function()
    local c = core.new(core_opts(nil, { auto_token = false }))
    local t, left, scope = c:token(true)
    assert.is_string(t)
    assert.is_true(left > 40000)
    assert.matches("WORKFLOW_INSTANCE_START", scope)
    assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
    assert.equal(t, (c:token()))
    assert.equal(1, token_requests())
    c:close()
  end)

  it("calls with a token fetched by another client, fetching none itself", function()
    local owner = core.new(core_opts())
    local t, left, scope = assert(owner:token())
    local c = core.new(core_opts(nil, { auto_token = false }))
    c:set_token(t, left, scope)
    local status, body = c:request("GET", "/v1/workflow-definitions")
    assert.equal(200, status)
    assert.matches("orderapproval", body)
    local t2, left2, scope2 = c:token()
    assert.equal(t, t2)
    assert.is_true(left2 <= left and left2 > left - 5)
    assert.equal(scope, scope2)
    assert.equal(1, token_requests())
    owner:close()
    c:close()
  end)

  it("returns a 401 as the answer, and renew renews nothing: its owner does", function()
    local owner = core.new(core_opts())
    local c = core.new(core_opts(nil, { auto_token = false }))
    c:set_token(assert(owner:token()), 3600)
    emu:expire_tokens()
    local before = emu:stats()
    local status, body = c:request("POST", "/v1/workflow-instances",
                                   '{"definitionId":"simple","context":{}}')
    assert.equal(401, status)
    assert.is_string(body)
    local _, _, _, gen = c:request("GET", "/v1/workflow-definitions")
    assert.is_false(c:renew(gen, false))
    local after = emu:stats()
    assert.equal(before.token_requests, after.token_requests)
    assert.equal(before.api_requests + 2, after.api_requests)
    assert.equal(before.instances_started, after.instances_started)
    owner:close()
    c:close()
  end)

  -- The C request never sends twice by itself: a 401 comes back with the token's
  -- generation, and renew (which send.lua calls) fetches a new token for it once.
  it("with auto_token (the default) returns a 401 as it came; renew renews once", function()
    local c = core.new(core_opts())
    assert(c:token())
    emu:expire_tokens()
    local status, _, _, gen, deadline = c:request("GET", "/v1/workflow-definitions")
    assert.equal(401, status)
    assert.is_number(gen)
    assert.is_true(deadline > core.monotonic())
    assert.equal(1, token_requests())
    assert.is_true(c:renew(gen, false, deadline))
    assert.equal(2, token_requests())
    assert.is_true(c:renew(gen, false))          -- a newer token is cached: no fetch
    assert.equal(2, token_requests())
    local status2, _, _, gen2 = c:request("GET", "/v1/workflow-definitions", nil, deadline)
    assert.equal(200, status2)
    assert.are_not.equal(gen, gen2)
    c:close()
  end)

  it("renews nothing for a second after a fresh token was refused too", function()
    local c = core.new(core_opts())
    local _, _, _, gen = c:request("GET", "/v1/workflow-definitions")
    assert.is_false(c:renew(gen, true))          -- its replay was refused: hold
    assert.is_false(c:renew(gen, false))
    assert.equal(1, token_requests())
    c:close()
  end)

  it("uses a given token until it expires, and then fails without fetching", function()
    local owner = core.new(core_opts())
    local t = assert(owner:token())
    local c = core.new(core_opts(nil, { auto_token = false }))
    c:set_token(t, 0)
    local status, err = c:request("GET", "/v1/workflow-definitions")
    assert.is_nil(status)
    assert.equal("auth", err.kind)
    assert.matches("expired", err.message)
    c:set_token(t, math.huge)
    assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
    local _, left = c:token()
    assert.equal(math.huge, left)
    assert.equal(1, token_requests())
    owner:close()
    c:close()
  end)

  it("replaces the token and its scope on each set_token", function()
    local c = core.new(core_opts(nil, { auto_token = false }))
    c:set_token("first.token", 100, "a.X")
    c:set_token("second.token", 200)
    local t, left, scope = c:token()
    assert.equal("second.token", t)
    assert.is_true(left > 190 and left <= 200)
    assert.is_nil(scope)
    c:close()
  end)

  it("raises for bad arguments, naming them and never quoting the token", function()
    local c = core.new(core_opts(nil, { auto_token = false }))
    assert.has_error(function() c:set_token(nil, 10) end,
                     "bad argument #1 to 'set_token' (string expected, got nil)")
    assert.has_error(function() c:set_token(42, 10) end,
                     "bad argument #1 to 'set_token' (string expected, got number)")
    for _, bad in ipairs({ "", "abc\r\nX-Injected: 1", "with space", "nul\0byte", "é" }) do
      local ok, msg = pcall(function() c:set_token(bad, 10) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'set_token' %(token must be non%-empty visible ASCII%)",
                     msg)
      if bad ~= "" then assert.is_nil(msg:find(bad, 1, true)) end
    end
    assert.has_error(function() c:set_token("t", "10") end,
                     "bad argument #2 to 'set_token' (number expected, got string)")
    assert.has_error(function() c:set_token("t", -1) end,
                     "bad argument #2 to 'set_token' (seconds left must be a number >= 0)")
    assert.has_error(function() c:set_token("t", 0 / 0) end,
                     "bad argument #2 to 'set_token' (seconds left must be a number >= 0)")
    assert.has_error(function() c:set_token("t", 10, 7) end,
                     "bad argument #3 to 'set_token' (string or nil expected, got number)")
    -- nothing was cached by the failed calls
    assert.is_nil((c:token()))
    c:close()
    assert.has_error(function() c:set_token("t", 10) end, "attempt to use a closed sapwf client")
  end)

  it("checks the auto_token option's type", function()
    local opts = core_opts(nil, { auto_token = "no" })
    assert.has_error(function() core.new(opts) end,
                     "bad option 'auto_token' (boolean expected, got string)")
  end)
end)
