-- sapwf.core at its edges: hostile values from the token server and from options, the token
-- cache when a token lives short or its refresh fails, and finalizers that close a client or
-- a batch while one of its calls runs. Every case runs against the emulator; the emulator's
-- counters say what was sent, so "nothing was sent" is checked, not assumed.
local core = require "sapwf.core"
local sapwf = require "sapwf"
local helpers = require "spec.helpers"
local cjson = require "cjson"

-- A value whose finalizer runs fn: tables have __gc from Lua 5.2 on, 5.1 and LuaJIT need a
-- userdata from newproxy.
local function finalizer(fn)
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = fn
    return proxy
  end
  return setmetatable({}, { __gc = fn })
end

-- Runs fn with the collector working at every allocation, then restores its settings.
-- Lua 5.4 may run in generational mode, where setpause and setstepmul do nothing: minor
-- collections come after the heap grew by a share of itself, so how often one falls inside
-- a call shrinks as the process's heap grows (more spec files loaded, larger ones). Hence
-- incremental mode here.
local LUA54 = _VERSION == "Lua 5.4" and not jit
local function with_eager_gc(fn)
  local mode = LUA54 and collectgarbage("incremental") or nil
  local pause = collectgarbage("setpause", 0)
  local stepmul = collectgarbage("setstepmul", 1000)
  local ok, err = pcall(fn)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  if mode then collectgarbage(mode) end
  if not ok then error(err, 0) end
end

-- Inside with_eager_gc, thorough(true) makes the next step run a whole cycle, finalizers
-- included (5.4: a step size beyond any heap; 5.3: an unlimited step multiplier), from a
-- pause: the next allocation runs the finalizer of a value dropped meanwhile, whatever the
-- heap's size. That cycle ends in a pause of 200% (set after the collection that began
-- it, so the next allocation still steps), so the rest of the call runs no more cycles:
-- one at each allocation would take seconds a call under valgrind. thorough(false) goes
-- back to the eager steps.
local function thorough(on)
  if LUA54 then
    collectgarbage("incremental", 0, 0, on and 64 or 13)     -- 13: 5.4's default step size
  elseif _VERSION == "Lua 5.3" then
    collectgarbage("setstepmul", on and 1000000000 or 1000)
  end
  if on then collectgarbage() end
  collectgarbage("setpause", on and 200 or 0)
end

describe("sapwf.core at the edges", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function core_opts(name, extra) return helpers.core_options(emu, name, extra) end

  local function token_answer(token)
    return cjson.encode({ access_token = token, token_type = "bearer", expires_in = 3600,
                          scope = "uaa.resource" })
  end

  describe("a hostile access_token", function()
    local hostile = {
      { "CR LF (a header of its own)", "abc\r\nX-Injected: 1" },
      { "a lone LF", "abc\nX-Injected: 1" },
      { "NUL", "abc\0def" },
      { "a space", "abc def" },
      { "a byte from 0x80", "abc\195\169def" },
      { "DEL", "abc\127" },
    }
    for _, case in ipairs(hostile) do
      it("with " .. case[1] .. " is refused at the token step, nothing sent or cached", function()
        emu:fault{ fault = "body", path = "/oauth/token", body = token_answer(case[2]) }
        local c = core.new(core_opts())
        local status, err = c:request("GET", "/v1/workflow-definitions")
        assert.is_nil(status)
        assert.equal("decode", err.kind)
        assert.equal("token", err.phase)
        assert.is_false(err.sent)
        assert.is_nil(err.message:find("X-Injected", 1, true))
        assert.is_nil(err.message:find("abc", 1, true))
        assert.equal(0, emu:stats().api_requests)
        -- nothing bad was cached: the next call fetches a good token and works
        assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
        local token = assert(c:token())
        assert.matches("^[!-~]+$", token)
        assert.equal(2, emu:stats().token_requests)
        c:close()
      end)
    end

    it("is refused by token(true) too, keeping the good token cached before it", function()
      local c = core.new(core_opts())
      local good = assert(c:token())
      emu:fault{ fault = "body", path = "/oauth/token", body = token_answer("a\r\nb") }
      local t, err = c:token(true)
      assert.is_nil(t)
      assert.equal("decode", err.kind)
      assert.equal(good, (c:token()))
      c:close()
    end)

    it("reaches the module as a decode error of phase token", function()
      emu:fault{ fault = "body", path = "/oauth/token", body = token_answer("a\r\nb") }
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"), retries = 0 })
      local value, err = wf:definitions()
      assert.is_nil(value)
      assert.equal("decode", err.kind)
      assert.equal("token", err.phase)
      assert.equal("not_sent", err.outcome)
      assert.equal(0, emu:stats().api_requests)
      assert.is_table((wf:definitions()))
      wf:close()
    end)
  end)

  describe("header values from options", function()
    it("refuses a user_agent with CR, LF, NUL or another control byte, naming it", function()
      for _, bad in ipairs({ "x\r\nX-Injected: 1", "x\ny", "x\rb", "a\1b", "a\127" }) do
        local ok, msg = pcall(core.new, core_opts(nil, { user_agent = bad }))
        assert.is_false(ok)
        assert.matches("bad option 'user_agent'", msg)
        assert.is_nil(msg:find("Injected", 1, true))
        ok, msg = pcall(sapwf.new, { service_key = emu:service_key("full"), user_agent = bad })
        assert.is_false(ok)
        assert.matches("user_agent", msg)
      end
      assert.equal(0, emu:stats().token_requests)
    end)

    it("takes one with spaces and tabs, and sends it", function()
      local c = core.new(core_opts(nil, { user_agent = "my app/1.0 (sapwf)\tx" }))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      c:close()
    end)
  end)

  describe("paths and redirects", function()
    local ESCAPES = { "/../../etc/passwd", "/v1/../../x", "/v1/./workflow-definitions",
      "/v1/%2e%2e/x", "/v1/%2E%2e/x", "/v1/.%2E/x", "/v1/..\\x", "/v1/x\\..\\..",
      "/v1/..", "/v1/..?$top=1", "/v1/..;/x", "/v1/x/.;a=1/y", "/v1/%2e%2e;jsessionid=1",
      -- a proxy or server that decodes an escaped "/" or "\\" before it resolves the path
      "/v1/%2e%2e%2Fx", "/v1/x%2f..%2fy", "/v1/..%5Cx", "/v1/x%5c%2e", "/v1/x%2F." }

    it("no path leaves the API's base path: wf:request raises naming it", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full") })
      for _, path in ipairs(ESCAPES) do
        local ok, msg = pcall(wf.request, wf, "GET", path)
        assert.is_false(ok, path)
        assert.matches("bad argument #2 to 'request'", msg)
        assert.matches("'%.' or '%.%.' segments", msg)
      end
      assert.equal(0, emu:stats().api_requests)
      -- a fragment is never sent: the query after it would be lost, the filters with it
      for _, path in ipairs({ "/v1/workflow-instances#x", "/v1/.#x", "/v1/x?a=1#b" }) do
        local ok, msg = pcall(wf.request, wf, "GET", path, { query = { ["$top"] = 1 } })
        assert.is_false(ok, path)
        assert.matches("bad argument #2 to 'request' %(path must not contain '#'", msg)
      end
      assert.equal(0, emu:stats().api_requests)
      -- dots inside a segment, and in the query, are no segments
      assert.is_table((wf:request("GET", "/v1/workflow-definitions?x=../..")))
      local _, err = wf:request("GET", "/v1/workflow-definitions/a..b")
      assert.equal("not_found", err.kind)
      _, err = wf:request("GET", "/v1/workflow-definitions/a%2F..b%2F%2e.x")
      assert.equal("not_found", err.kind)
      wf:close()
    end)

    it("nor through the core's request and batch", function()
      local c = core.new(core_opts())
      local batch = c:batch(1)
      for _, path in ipairs(ESCAPES) do
        local ok, msg = pcall(function() return c:request("GET", path) end)
        assert.is_false(ok, path)
        -- (LuaJIT names the argument from the caller's view: "#3 to '?'")
        assert.matches("bad argument #%d to '[%w?]+' %(path must not contain", msg)
        ok, msg = pcall(function() return batch:submit(1, "GET", path) end)
        assert.is_false(ok, path)
        assert.matches("bad argument #%d to '[%w?]+' %(path must not contain", msg)
      end
      assert.equal(0, emu:stats().api_requests)
      batch:close()
      c:close()
    end)

    it("a 3xx is an error, never followed: the token does not travel", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full") })
      local token = assert(wf:token())
      local elsewhere = emu.url .. "/workflow-service/rest/v1/workflow-instances"
      for _, status in ipairs({ 301, 302, 303, 307, 308 }) do
        emu:reset()
        emu:fault{ fault = "status", status = status, path = "/v1/workflow-definitions",
                   location = elsewhere }
        local value, err = wf:request("GET", "/v1/workflow-definitions")
        assert.is_nil(value)
        assert.equal(status, err.status)
        assert.equal("server", err.kind)
        assert.matches("redirect to 127%.0%.0%.1:%d+, not followed", err.message)
        assert.matches("follows no redirect", err.hint)
        assert.is_nil(tostring(err):find(token, 1, true))
        emu:fault{ fault = "status", status = status, path = "/v1/workflow-definitions",
                   location = elsewhere }
        value, err = wf:definitions()
        assert.is_nil(value)
        assert.equal(status, err.status)
        -- one request each, none to where the Location pointed
        assert.equal(2, emu:stats().api_requests)
      end
      wf:close()
    end)
  end)

  describe("the token cache", function()
    local SHORT = "sb-sapwf-short!b1|workflow!b10150"
    local function short_lived(seconds)
      emu:set_client(SHORT, { secret = "short-lived-secret", expires_in = seconds,
                              authorities = { "WORKFLOW_DEFINITION_GET" } })
    end

    it("fetches a token that lives no longer than token_margin once, not for every call", function()
      short_lived(30)
      local c = core.new(core_opts(SHORT))                     -- token_margin 60 (default)
      for _ = 1, 5 do assert.equal(200, (c:request("GET", "/v1/workflow-definitions"))) end
      local batch = c:batch(2)
      for slot = 1, 2 do batch:submit(slot, "GET", "/v1/workflow-definitions") end
      for _ = 1, 2 do
        local _, status = batch:wait()
        assert.equal(200, status)
      end
      batch:close()
      assert.equal(1, emu:stats().token_requests)
      c:close()
    end)

    it("keeps serving a valid token while its refresh fails", function()
      short_lived(4)   -- renewed 2 s before it expires (half)
      local c = core.new(core_opts(SHORT, { timeout = 2 }))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      emu:fault{ fault = "status", status = 500, path = "/oauth/token", times = -1 }
      core.sleep(2.3)
      -- due for renewal; the refresh fails, the token has about 1.7 s left and serves
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      local stats = emu:stats()
      -- the second call did not ask the failing endpoint again (a refresh is retried later)
      assert.equal(2, stats.token_requests)
      assert.equal(3, stats.api_requests)
      c:close()
    end)

    it("tries a failed renewal again after 5 s, the valid token serving meanwhile",
       function()
      -- The shortest life that leaves the 5 s, the 1 s a token must have left to be used
      -- (TOKEN_FLOOR, token.c) and a margin for a slow run under valgrind.
      short_lived(16)  -- due 8 s before it expires (half its lifetime)
      local c = core.new(core_opts(SHORT, { timeout = 2 }))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      local t0 = core.monotonic()              -- the token expires at most 16 s from here
      emu:fault{ fault = "status", status = 500, path = "/oauth/token", times = -1 }
      local function at(seconds) core.sleep(math.max(0, t0 + seconds - core.monotonic())) end
      at(8.2)                                  -- due: the renewal fails, the token serves
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      assert.equal(2, emu:stats().token_requests)
      at(10.5)                                 -- within 5 s of that failure: not tried
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      assert.equal(2, emu:stats().token_requests)
      at(13.5)                                 -- 5 s on: tried again, and the token serves
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      assert.equal(3, emu:stats().token_requests)
      c:close()
    end)

    it("fails once the token has expired and the refresh still fails", function()
      short_lived(2)
      local c = core.new(core_opts(SHORT, { timeout = 2 }))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      emu:fault{ fault = "status", status = 500, path = "/oauth/token", times = -1 }
      core.sleep(2.1)
      local status, err = c:request("GET", "/v1/workflow-definitions")
      assert.is_nil(status)
      assert.equal("server", err.kind)
      assert.equal("token", err.phase)
      assert.equal(1, emu:stats().api_requests)
      c:close()
    end)
  end)

  describe("an API that refuses every token (401 for good)", function()
    -- The rule lives in send.lua and client:renew: a 401 renews once and replays once; a
    -- 401 to that replay holds renewals for a second, for calls and batches alike.
    it("costs one renewal, then at most one token request a second, not one per call", function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"), retries = 0 })
      assert(wf:token())
      emu:fault{ fault = "status", status = 401, times = -1, path = "/v1/workflow-definitions" }
      local t0 = core.monotonic()
      for _ = 1, 20 do
        local value, err = wf:definitions()
        assert.is_nil(value)
        assert.equal(401, err.status)
      end
      local list = {}
      for i = 1, 12 do list[i] = i end
      local results = wf:map(list, function(w) return w:definitions() end, { concurrency = 4 })
      for i = 1, 12 do assert.equal(401, results[i].status, "item " .. i) end
      local seconds = core.monotonic() - t0
      local stats = emu:stats()
      -- 1 before the fault, 1 renewal at the first 401, then one per second at most
      assert.is_true(stats.token_requests <= 2 + math.floor(seconds) + 1,
                     stats.token_requests .. " token requests in " .. seconds .. " s")
      assert.is_true(seconds < 1.5 or stats.token_requests >= 2)
      -- after the hold, a 401 renews again: a key rotated back into use is picked up
      core.sleep(1.1)
      local before = emu:stats().token_requests
      assert.is_nil((wf:definitions()))
      assert.equal(before + 1, emu:stats().token_requests)
      wf:close()
    end)
  end)

  describe("timeout bounds a whole request", function()
    -- The README's bound: one request, with its token fetch, a 401's renewal and the replay,
    -- takes at most `timeout`; with retries = 0 so does a call of the module.
    it("a slow token fetch, a 401 and its renewal share the request's deadline", function()
      emu:fault{ fault = "delay", delay = 0.8, times = -1, path = "/oauth/token" }
      emu:fault{ fault = "status", status = 401, times = 1, path = "/v1/workflow-definitions" }
      local c = core.new(core_opts(nil, { timeout = 1.2 }))
      local t0 = core.monotonic()
      local status, _, _, gen, deadline = c:request("GET", "/v1/workflow-definitions")
      assert.equal(401, status)
      assert.is_true(math.abs(deadline - (t0 + 1.2)) < 0.1)
      local again, err = c:renew(gen, false, deadline)
      local took = core.monotonic() - t0
      assert.is_nil(again)
      assert.equal("timeout", err.kind)
      assert.is_true(took < 1.2 + 0.3, "took " .. took .. " s")
      -- before the bound: 0.8 (token) + 0.8 (renewal), each with its own 1.2 s
      assert.is_true(took > 1.0, "took " .. took .. " s")
      c:close()
    end)

    it("a call of the module with retries = 0 too", function()
      emu:fault{ fault = "delay", delay = 0.8, times = -1, path = "/oauth/token" }
      emu:fault{ fault = "status", status = 401, times = 1, path = "/v1/workflow-definitions" }
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"), timeout = 1.2,
                                   retries = 0 })
      local t0 = core.monotonic()
      local value, err = wf:definitions()
      local took = core.monotonic() - t0
      assert.is_nil(value)
      assert.equal("timeout", err.kind)
      assert.is_true(took < 1.2 + 0.3, "took " .. took .. " s")
      wf:close()
    end)

    it("a start of a batch too: a 401's replay gets what is left of the first sending's",
       function()
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"), timeout = 1,
                                   retries = 0 })
      assert(wf:token())
      emu:expire_tokens()                           -- the first sending gets a 401 ...
      emu:fault{ fault = "delay", delay = 0.7, times = 2, method = "POST",
                 path = "/v1/workflow-instances" }  -- ... after 0.7 s, and so would the replay
      local t0 = core.monotonic()
      local err = wf:start_many({ { definitionId = "simple" } })[1]
      local took = core.monotonic() - t0
      wf:close()
      assert.is_true(sapwf.is_error(err), "the replay had a whole timeout of its own")
      assert.equal("timeout", err.kind)
      assert.is_true(took < 1 + 0.3, "took " .. took .. " s")
    end)

    it("sets no limit when it is 0, as in libcurl", function()
      emu:fault{ fault = "delay", delay = 0.3, times = 1, method = "POST",
                 path = "/v1/workflow-instances" }
      local wf = assert(sapwf.new{ service_key = emu:service_key("full"), timeout = 0 })
      assert(wf:start("simple"))
      local results = wf:start_many({ { definitionId = "simple" }, { definitionId = "simple" } })
      for i = 1, 2 do assert.is_false(sapwf.is_error(results[i]), tostring(results[i])) end
      wf:close()
    end)

    it("leaves the next request its whole timeout", function()
      local c = core.new(core_opts(nil, { timeout = 1 }))
      emu:fault{ fault = "delay", delay = 0.7, times = 2, path = "/v1/workflow-definitions" }
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions")))
      c:close()
    end)
  end)

  describe("signals caught by catch_sigint", function()
    it("are still handled once the interpreter has unloaded the module, as its state's " ..
       "close does (a copy of the signal at exit: no crash)", function()
      -- Lua 5.4's registry names its C modules' handles _CLIBS; its finalizer unloads them,
      -- which lua_close (os.exit(code, true)) runs. Called here, Lua goes on after it.
      local script = os.tmpname()
      helpers.write_file(script, [[
package.cpath = "./build/lua5.4/?.so;" .. package.cpath
local core = require "sapwf.core"
core.catch_sigint(true)
local clibs = debug.getregistry()._CLIBS
getmetatable(clibs).__gc(clibs)
os.execute("kill -TERM $PPID")
io.write("alive\n")
io.stdout:flush()
os.exit(0, false)
]])
      local ok, out, code = helpers.run("lua5.4 " .. script)
      os.remove(script)
      assert.equal("alive\n", out)
      assert.is_true(ok, "exit " .. tostring(code))
    end)
  end)

  describe("odd arguments", function()
    it("an output table whose __index closes the client: the closed error, nothing sent",
      function()
        local c = core.new(core_opts())
        local before = emu:stats().api_requests
        local output = setmetatable({}, { __index = function() c:close() end })
        local ok, err = pcall(c.request, c, "GET", "/v1/workflow-definitions", nil, nil, output)
        assert.is_false(ok)
        assert.matches("closed sapwf client", err)
        assert.equal(before, emu:stats().api_requests)
      end)

    it("an output table whose __index makes its values: they live until the call ends",
      function()
        -- the accept string is referenced by nothing but the call once the table's __index
        -- made it; a collection on the next lookup would free it before libcurl sends it
        -- (the valgrind and ASan stages see that read)
        local c = core.new(core_opts())
        local output = setmetatable({}, { __index = function(_, k)
          if k == "accept" then
            return "application/json, " .. string.rep("text/plain;q=0.1, ", 5) .. "*/*;q=0.01"
          end
          collectgarbage()
          collectgarbage()
          for i = 1, 200 do local _ = string.rep("x", 90) .. i end   -- reuse freed memory
        end })
        local status, body = c:request("GET", "/v1/workflow-definitions", nil, nil, output)
        assert.equal(200, status)
        assert.is_table(cjson.decode(body))
        c:close()
      end)

    it("a deadline of math.huge is no deadline libcurl cannot take", function()
      local c = core.new(core_opts())
      assert.equal(200, (c:request("GET", "/v1/workflow-definitions", nil, math.huge)))
      local b = c:batch(1)
      b:submit(1, "GET", "/v1/workflow-definitions", nil, math.huge)
      local _, status = b:wait()
      assert.equal(200, status)
      b:close()
      c:close()
    end)
  end)

  -- Runs `call` on fresh objects (`make`) until a finalizer that runs `on_gc` on them ran
  -- while the call ran (on_gc(victim, inside): inside says so), and `judge` counted it, at
  -- least `want` times (a GC step inside the call runs finalizers: where it falls depends
  -- on the allocator). judge(nested, ok, a, b, victim) gets what on_gc returned,
  -- pcall(call, victim)'s results and the victim, asserts, and says whether the try
  -- counts. A crash ends the whole run, which is what ASan and valgrind watch for (their
  -- CI stages run Lua 5.4). Lua 5.4 and 5.3 run finalizers inside calls often enough to
  -- demand a few; Lua 5.1 and LuaJIT so seldom (none in 300 tries for most of these cases)
  -- that a case there would pass having tested nothing, so the cases exist on 5.4 and 5.3
  -- only. The GC stress stage of CI leaves them out (#midcall): they drive the collector
  -- themselves.
  local MID_CALL = (_VERSION == "Lua 5.4" or _VERSION == "Lua 5.3") and not jit
  -- Until the hits asked for have come, every other try runs thorough steps during its
  -- call (a finalizer at the call's first allocation), so they come whatever the heap;
  -- the tries between, and the rest of the 20, land where the eager steps fall. (A
  -- thorough try runs a whole cycle over the heap: slow under valgrind, so no more of
  -- them than the hits need.)
  local function mid_call(make, call, on_gc, judge, want)
    local hits, tries = 0, 0
    local function try(full)
      tries = tries + 1
      local victim, during, nested = make(), false, nil
      local state = { inside = false }
      local guard = finalizer(function()
        local inside = state.inside
        if inside then during = true end
        local r = on_gc(victim, inside)
        if inside then nested = r end
      end)
      if full then thorough(true) end
      state.inside = true
      guard = nil                       -- its last reference: garbage from here on
      local ok, a, b = pcall(call, victim)
      state.inside = false
      if full then thorough(false) end
      if during and judge(nested, ok, a, b, victim) then hits = hits + 1 end
      victim:close()
    end
    with_eager_gc(function()
      while (hits < want or tries < 20) and tries < 2000 do
        try(tries % 2 == 1 and hits < want)
      end
    end)
    assert.is_true(hits >= want, "a finalizer reached the object during a call only "
      .. hits .. " times in " .. tries .. " tries")
  end

  -- Objects for mid_call: batch_maker(size, token) makes a batch of `size` on a fresh client
  -- (with a token cached when `token`), client_maker() a fresh client with a batch of 1
  -- (current() is the latest); done() closes the other halves.
  local function batch_maker(size, token)
    local clients = {}
    return function()
        local c = core.new(core_opts())
        if token then assert.is_string((c:token())) end
        clients[#clients + 1] = c
        return c:batch(size)
      end,
      function() for _, c in ipairs(clients) do c:close() end end
  end
  local function client_maker()
    local batches = {}
    return function()
        local c = core.new(core_opts())
        batches[#batches + 1] = c:batch(1)
        return c
      end,
      function() return batches[#batches] end,
      function() for _, b in ipairs(batches) do b:close() end end
  end

  if MID_CALL then
    describe("a finalizer that closes during a call #midcall", function()
      -- Each call a finalizer closed the object in must end in its result or in the closed
      -- error.
      local function closes_mid_call(make, call, closed_message, want)
        mid_call(make, call, function(victim) victim:close() end,
          function(_, ok, a, b)
            if ok then
              assert.is_true(a == 200 or (a == nil and type(b) == "table") or type(a) == "number",
                             "a call that finished returns its result")
            else
              assert.matches(closed_message, a)
            end
            return true
          end, want)
      end

      it("a client: the call returns its result or raises the closed error", function()
        closes_mid_call(function() return core.new(core_opts()) end,
          function(c) return c:request("GET", "/v1/workflow-definitions") end,
          "closed sapwf client", 3)
      end)

      it("a client in token(): the same", function()
        closes_mid_call(function() return core.new(core_opts()) end,
          function(c) return (c:token()) and 200 end, "closed sapwf client", 3)
      end)

      it("a client in batch(): a finalizer that closed it ends in the closed error", function()
        closes_mid_call(function() return core.new(core_opts()) end,
          function(c)
            local b = c:batch(8)
            b:close()
            return 200
          end, "closed sapwf client", 3)
      end)

      local function batch_call(b)
        b:submit(1, "GET", "/v1/workflow-definitions")
        local _, status = b:wait()
        return status
      end

      it("a batch, while submit fetches the token", function()
        local make, done = batch_maker(1)
        closes_mid_call(make, batch_call, "closed sapwf batch", 3)
        done()
      end)

      it("a client, while its batch fetches the token", function()
        local make, current, done = client_maker()
        closes_mid_call(make, function() return batch_call(current()) end, "closed sapwf", 3)
        done()
      end)

      -- As client:request: a request that had not gone out when its client was closed is
      -- not sent; submit raises the closed error and the batch owes nothing.
      it("a client, while its batch's submit fetches the token: the closed error, nothing " ..
         "sent", function()
        local make, current, done = client_maker()
        mid_call(make,
          function() return current():submit(1, "GET", "/v1/workflow-definitions") end,
          function(victim) victim:close() end,
          function(_, ok, err)
            assert.is_false(ok, "submit took a request for a client closed meanwhile")
            assert.matches("attempt to use a closed sapwf client", err)
            local b = current()
            assert.has_error(function() b:wait(0) end, "attempt to use a closed sapwf client")
            return true
          end, 3)
        done()
        assert.equal(0, emu:stats().api_requests)
      end)
    end)

    describe("a finalizer that calls the object during a call #midcall", function()
      -- A call may run Lua (cjson decoding a token, a push that collects), so a finalizer may
      -- call the very client or batch whose call is under way. Such a call would take the
      -- running call's buffers (its headers came back empty, a batch answer was lost), so it
      -- is refused: it raises, and the running call ends as if nothing had happened.
      local DEFS = "/v1/workflow-definitions"
      local BUSY = "is busy with another call"

      -- The values as a table, made after the call that gave them: a table made before a call
      -- would be its first allocation, where the finalizer would run.
      local function pack(...) return { ... } end

      -- pcall(fn)'s results as a table, for a judge to read after the call.
      local function attempt(fn) return pack(pcall(fn)) end

      -- A nested call ended in the refusal (counts), or ran when the object was not busy
      -- (before or after the call's own part: allowed, does not count).
      local function refused(nested)
        if nested[1] then return false end
        assert.matches(BUSY, nested[2])
        return true
      end

      -- The answer every GET of DEFS gets, and its check.
      local reference
      local function intact(status, body, headers)
        assert.equal(200, status)
        assert.equal(reference, body)
        assert.matches("^application/json", core.header(headers, "content-type"))
      end
      before_each(function()
        local c = core.new(core_opts())
        local status, body = c:request("GET", DEFS)
        assert.equal(200, status)
        reference = body
        c:close()
      end)

      local function with_token()
        local c = core.new(core_opts())
        assert.is_string((c:token()))
        return c
      end

      local function request_judge(nested, ok, answer)
        assert.is_true(ok, tostring(answer))
        intact(answer[1], answer[2], answer[3])
        return refused(nested)
      end

      it("a client in request, while it fetches the token: refused, the answer intact",
        function()
          mid_call(function() return core.new(core_opts()) end,
            function(c) return pack(c:request("GET", DEFS)) end,
            function(c) return attempt(function() return c:request("GET", DEFS) end) end,
            request_judge, 3)
        end)

      it("a client in request, while it pushes the answer: refused, the answer intact",
        function()
          mid_call(with_token,
            function(c) return pack(c:request("GET", DEFS)) end,
            function(c) return attempt(function() return c:token(true) end) end,
            request_judge, 3)
        end)

      it("a client in token: refused, the token returned is the one cached", function()
        mid_call(function() return core.new(core_opts()) end,
          function(c)
            local token = c:token()
            return { token, (c:token()) }
          end,
          function(c) return attempt(function() return c:set_token("other", 60) end) end,
          function(nested, ok, t)
            assert.is_true(ok, tostring(t))
            assert.is_string(t[1])
            assert.equal(t[#t], t[1])
            return refused(nested)
          end, 3)
      end)

      -- Every answer wait returns, as {slot, status, body, headers}, until none is left. The
      -- first wait comes before any allocation.
      local function drain(b)
        local slot, status, body, headers = b:wait()
        local got = {}
        while slot ~= nil do
          got[#got + 1] = { slot, status, body, headers }
          slot, status, body, headers = b:wait()
        end
        return got
      end

      -- Each slot in `slots` answered exactly once, intact.
      local function answered(got, slots)
        local seen = {}
        for _, a in ipairs(got) do
          assert.is_nil(seen[a[1]], "slot " .. a[1] .. " answered twice")
          seen[a[1]] = true
          intact(a[2], a[3], a[4])
        end
        for _, slot in ipairs(slots) do assert.is_true(seen[slot], "slot " .. slot .. " lost") end
        assert.equal(#slots, #got)
      end

      it("a batch in wait, while it pops an answer: refused, no answer lost", function()
        local make, done = batch_maker(2, true)
        mid_call(make,
          function(b)
            b:submit(1, "GET", DEFS)
            b:submit(2, "GET", DEFS)
            local s0, status0, body0, headers0 = b:wait(0)   -- both go out; one may be done
            core.sleep(0.05)                    -- both answered: one perform reads both
            local got = drain(b)
            if s0 ~= nil then got[#got + 1] = { s0, status0, body0, headers0 } end
            return got
          end,
          function(b) return attempt(function() return pack(b:wait()) end) end,
          function(nested, ok, got)
            assert.is_true(ok, tostring(got))
            -- a wait between the calls (not refused) took its answer rightly
            if nested[1] and nested[2][1] ~= nil then got[#got + 1] = nested[2] end
            answered(got, { 1, 2 })
            return refused(nested)
          end, 3)
        done()
      end)

      it("a batch in submit, while it fetches the token: refused, nothing else sent", function()
        local make, done = batch_maker(2)
        mid_call(make,
          function(b)
            b:submit(1, "GET", DEFS)
            return drain(b)
          end,
          function(b) return attempt(function() return b:submit(2, "GET", DEFS) end) end,
          function(nested, ok, got)
            assert.is_true(ok, tostring(got))
            if not refused(nested) then return false end
            answered(got, { 1 })
            return true
          end, 3)
        done()
      end)

      it("a client, while its batch fetches the token: refused, the batch's answer intact",
        function()
          local make, current, done = client_maker()
          mid_call(make,
            function()
              local b = current()
              b:submit(1, "GET", DEFS)
              return drain(b)
            end,
            function(c) return attempt(function() return c:request("GET", DEFS) end) end,
            function(nested, ok, got)
              assert.is_true(ok, tostring(got))
              answered(got, { 1 })
              return refused(nested)
            end, 3)
          done()
        end)

      -- A batch's wait uses none of its client's buffers, token or deadline (its slots are
      -- its own), so a finalizer may wait on a batch while the batch's client is in a call:
      -- the wait hands over its answer and the client's call ends as if nothing happened.
      -- make() gives a client with a token and a batch of it with a GET of DEFS submitted
      -- (sent by the first wait); batch_of(c) is c's batch.
      local function client_with_submitted()
        local batches = {}
        return function()
            local c = with_token()
            local b = c:batch(1)
            b:submit(1, "GET", DEFS)
            batches[c] = b
            return c
          end,
          function(c) return batches[c] end,
          function() for _, b in pairs(batches) do b:close() end end
      end

      -- on_gc: a wait on c's batch, and whether c was busy then (token() is refused only
      -- while c is in a call; otherwise it returns the cached token, nothing fetched).
      local function waits_on_batch(batch_of)
        return function(c, inside)
          if not inside then return nil end
          local probe = attempt(function() return c:token() end)
          if not probe[1] then assert.matches(BUSY, probe[2]) end
          return { busy = not probe[1],
                   waited = attempt(function() return pack(batch_of(c):wait()) end) }
        end
      end

      -- The nested wait was not refused, and handed over slot 1's answer intact; counts
      -- when the client was busy then.
      local function batch_answered(nested)
        local waited = nested.waited
        assert.is_true(waited[1], tostring(waited[2]))
        local got = waited[2]
        assert.equal(1, got[1])
        intact(got[2], got[3], got[4])
        return nested.busy
      end

      it("a batch's wait while its client in request pushes the answer: allowed, both " ..
         "answers intact", function()
        local make, batch_of, done = client_with_submitted()
        mid_call(make,
          function(c) return pack(c:request("GET", DEFS)) end,
          waits_on_batch(batch_of),
          function(nested, ok, answer)
            assert.is_true(ok, tostring(answer))
            intact(answer[1], answer[2], answer[3])
            return batch_answered(nested)
          end, 3)
        done()
      end)

      it("a batch's wait while its client fetches a token: allowed, the token and the " ..
         "answer intact", function()
        local make, batch_of, done = client_with_submitted()
        mid_call(make,
          function(c)
            local before = c:token()
            return { before, c:token(true) }
          end,
          waits_on_batch(batch_of),
          function(nested, ok, t)
            assert.is_true(ok, tostring(t))
            assert.is_string(t[1])
            assert.is_string(t[2])
            return batch_answered(nested)
          end, 3)
        done()
      end)

      -- Lua 5.1, 5.3 and LuaJIT pass a finalizer's error on to the call it ran in (5.4 only
      -- warns): a raise from inside a call's held part, as out of memory would be. It used to
      -- leave the client held for good (never freed) and the call's deadline in place, so a
      -- later token fetch timed out at once.
      -- (on 5.4 no finalizer can raise in a call, and out of memory cannot be made at will:
      -- the case exists only where it can fail, 5.3)
      if _VERSION == "Lua 5.3" then
        it("a finalizer's error inside a call: raised; the hold and the deadline undone",
           function()
          mid_call(function()
              local c = core.new(core_opts(nil, { timeout = 0.5 }))
              assert.is_string((c:token()))
              return c
            end,
            function(c) return (c:request("GET", DEFS)) end,
            function(_, inside) if inside then error("finalizer failed") end end,
            function(_, ok, err, _, c)
              if ok then return false end
              assert.matches("finalizer failed", tostring(err))
              core.sleep(0.6)                         -- past the deadline that request had
              local token, left = c:token(true)
              assert.is_string(token, "a token fetch after the raise: "
                               .. tostring(type(left) == "table" and left.message))
              assert.equal(200, (c:request("GET", DEFS)))     -- not refused as busy
              return true
            end, 3)
        end)
      end
    end)
  end
end)
