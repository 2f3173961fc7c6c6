-- sapwf.ngx in a real nginx (Debian's nginx with its Lua module: LuaJIT, Lua 5.1 API)
-- against the emulator: the webhook bridge of examples/nginx/ as shipped (port, worker
-- count and an access log of worker pids put in by the test), and a config of this spec's
-- own for the phases. Loads come from curl --parallel, so the clients are as concurrent
-- as nginx lets them be.
local helpers = require "spec.helpers"
local gateway = require "spec.support.gateway"
local shell = require "sapwf.emulator.shell"
local cjson = require "cjson"

local function decode(text) return text and cjson.decode(text) end

-- Worker pids that answered, from the test access log.
local function worker_pids(g)
  local pids, n = {}, 0
  for pid in g:access_log():gmatch("(%d+) %d+ /orders") do
    if not pids[pid] then pids[pid] = true; n = n + 1 end
  end
  return n
end

-- An nginx.conf for sapwf.ngx: one worker, the thread pool "sapwf" with `threads` threads,
-- the token dict, and `http` (more directives and the servers) in the http block.
local function ngx_conf(threads, http)
  return ([[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
env SAPWF_SERVICE_KEY;
thread_pool sapwf threads=%d;
events { worker_connections 256; }
http {
  access_log off;
  lua_package_path "$prefix/lua/?.lua;$prefix/lua/?/init.lua;;";
  lua_package_cpath "$prefix/luajit/?.so;;";
  lua_shared_dict sapwf_tokens 1m;
]]):format(threads) .. http .. "}\n"
end

describe("sapwf.ngx in nginx", function()
  local emu, key, secret

  setup(function()
    gateway.build("luajit")
    emu = helpers.start_emulator()
    key = emu:service_key("full")
    secret = key.uaa.clientsecret
  end)
  teardown(function() if emu then emu:stop() end end)

  local function assert_no_secret(text)
    assert.is_nil(text:find(secret, 1, true), "the client secret appeared")
    assert.is_nil(text:find("Basic ", 1, true), "a Basic header appeared")
    assert.is_nil(text:find("Bearer ", 1, true), "a Bearer token appeared")
  end

  -- fn(g2) on a gateway of its own (gateway.start's opts), stopped after it, whatever fn
  -- raised, which is then raised.
  local function with_own_gateway(opts, fn)
    local g2 = gateway.start(opts)
    local ok, err = pcall(fn, g2)
    g2:stop()
    assert(ok, err)
  end

  -- For the describe block that calls it: a gateway on conf (a function making nginx.conf,
  -- or the text), started on a reset emulator before the block's tests and stopped after
  -- them; set(g) gets it.
  local function gateway_for_block(conf, set)
    local g
    setup(function()
      emu:reset()
      if type(conf) == "function" then conf = conf() end
      g = gateway.start{ conf = conf, key = key }
      set(g)
    end)
    teardown(function() if g then g:stop() end end)
  end

  it("outside nginx, new raises and points to sapwf.new", function()
    local sapwf_ngx = require "sapwf.ngx"
    assert.has_error(function() sapwf_ngx.new{ service_key = key } end,
                     "sapwf.ngx needs nginx's Lua module with ngx.run_worker_thread (OpenResty, "
                     .. "or lua-nginx-module 0.10.23 or newer); outside nginx use sapwf.new")
  end)

  describe("the bridge on one worker", function()
    local g
    gateway_for_block(function() return gateway.example_conf(1) end,
                      function(started) g = started end)
    after_each(function() emu:clear_faults() end)

    it("starts a workflow with the body as its context and answers with the id", function()
      local status, body = g:curl("/orders", [[-d '{"product":"Camera","price":100}']])
      assert.equal(201, status)
      local answer = decode(body)
      assert.equal("RUNNING", answer.status)
      local found
      for _, inst in ipairs(emu:instances()) do
        if inst.id == answer.id then found = inst end
      end
      assert.is_table(found, "the emulator has no instance " .. tostring(answer.id))
      assert.equal("orderapproval", found.definitionId)
      assert.equal("Camera", found.context.product)
      assert.equal(100, found.context.price)
    end)

    it("answers 50 concurrent starts, each delayed 200 ms by the service, far faster than "
       .. "one after another, and /health promptly meanwhile", function()
      emu:fault{ fault = "delay", delay = 0.2, times = -1, method = "POST",
                 path = "/v1/workflow-instances" }
      local before = emu:stats().instances_started
      local load = g:load("/orders", 50, 50, '{"product":"Lens","price":7}')
      -- Probe /health until the load is done: each probe notes when it ran.
      local probes = {}
      repeat
        local t0 = gateway.now_ns()
        local status, body, seconds = g:curl("/health")
        probes[#probes + 1] = { t0 = t0, t1 = gateway.now_ns(), status = status, body = body,
                                seconds = seconds }
      until load.done() or #probes >= 500
      local result = load.wait()

      assert.equal(50, #result.statuses)
      local ids = {}
      for i = 1, 50 do
        assert.equal(201, result.statuses[i])
        local answer = decode(result.bodies[i])
        assert.is_string(answer.id)
        assert.is_nil(ids[answer.id], "two answers with one id")
        ids[answer.id] = true
      end
      assert.equal(before + 50, emu:stats().instances_started)
      -- One after another: 50 x 0.2 s = 10 s. With 32 threads, two rounds of 0.2 s: about
      -- 0.5 s. 3 s leaves room for a slow, busy machine and is still under a third of 10 s.
      assert.is_true(result.seconds < 3, "took " .. result.seconds .. " s")

      local in_flight = 0
      for _, p in ipairs(probes) do
        assert.equal(200, p.status)
        assert.equal("ok\n", p.body)
        if p.t0 >= result.started and p.t1 <= result.ended then
          in_flight = in_flight + 1
          assert.is_true(p.seconds < 0.1, "/health took " .. p.seconds .. " s under load")
        end
      end
      assert.is_true(in_flight >= 1, "no /health probe ran while the starts were in flight")
    end)

    it("answers 400 to a body that is not a JSON object, and starts nothing", function()
      local before = emu:stats().api_requests
      for _, body in ipairs({ "{bad", "[1,2]", '"text"', "" }) do
        local status, answer = g:curl("/orders", "-d " .. "'" .. body .. "'")
        assert.equal(400, status, body)
        assert.equal("invalid", decode(answer).error)
      end
      assert.equal(before, emu:stats().api_requests)
    end)

    it("answers 502 with the error kind when the start fails, and never a secret", function()
      emu:fault{ fault = "status", status = 500, times = 1, method = "POST",
                 path = "/v1/workflow-instances" }
      local status, body = g:curl("/orders", [[-d '{"product":"Tripod"}']])
      assert.equal(502, status)
      local answer = decode(body)
      assert.equal("server", answer.error)
      assert.equal(500, answer.status)
      assert.equal("unknown", answer.outcome)
      assert_no_secret(body)
      local log = g:error_log()
      assert.matches("starting orderapproval failed: sapwf: server %(500%)", log)
      assert_no_secret(log)
      -- a service that quotes the secret and the Basic credentials: redacted in the error
      local basic = require("spec.support.reliability").base64(key.uaa.clientid .. ":" .. secret)
      emu:fault{ fault = "body", status = 400, times = 1, method = "POST",
                 path = "/v1/workflow-instances", body = cjson.encode{ error = {
                   message = "refused " .. secret .. " and " .. basic } } }
      status, body = g:curl("/orders", [[-d '{"product":"Tripod"}']])
      assert.equal(502, status)
      assert.equal("invalid", decode(body).error)
      log = g:error_log()
      assert.matches("refused [redacted] and [redacted]", log, 1, true)
      assert_no_secret(log)
      assert.is_nil(log:find(basic, 1, true))
    end)

    it("an nginx reload while a start is on its way: the old worker answers it first",
       function()
      emu:set_limits({ service_time = 0.8 })
      finally(function() emu:set_limits({}) end)
      local before = emu:stats().instances_started
      local load = g:load("/orders", 1, 1, [[{"product":"Reloaded"}]])
      require("sapwf.core").sleep(0.3)
      assert.is_true(helpers.run("kill -HUP " .. g.pid))
      local done = load:wait()
      assert.equal(201, done.statuses[1], done.bodies[1])
      assert.is_string(decode(done.bodies[1]).id)
      assert.equal(before + 1, emu:stats().instances_started)
      assert.is_nil(g:error_log():find("left in connection", 1, true))
    end)

    it("answers 502 'decode', outcome unknown, when the service answers a start with null",
       function()
      emu:fault{ fault = "body", status = 201, body = "null", times = 1, method = "POST",
                 path = "/v1/workflow-instances" }
      local status, body = g:curl("/orders", [[-d '{"product":"Strap"}']])
      assert.equal(502, status, body)
      local answer = decode(body)
      assert.equal("decode", answer.error)
      assert.equal(201, answer.status)
      assert.equal("unknown", answer.outcome)
      assert.matches("the workflow may have started", g:error_log(), 1, true)
    end)
  end)

  it("answers 502 'forbidden' for a client that may not start workflows, without secrets",
     function()
    local limited = emu:service_key("limited")
    local g = gateway.start{ conf = gateway.example_conf(1), key = limited }
    local ok, err = pcall(function()
      local before = emu:stats().token_requests
      local status, body = g:curl("/orders", [[-d '{"product":"Tripod"}']])
      assert.equal(502, status)
      -- more forbidden requests at once: a 403 refreshes the token at most once a second,
      -- not once for every request
      for _ = 1, 5 do
        assert.equal(502, (g:curl("/orders", [[-d '{"product":"Tripod"}']])))
      end
      local fetched = emu:stats().token_requests - before
      assert.is_true(fetched <= 3, fetched .. " token requests for 6 forbidden requests")
      local answer = decode(body)
      assert.equal("forbidden", answer.error)
      assert.equal(403, answer.status)
      assert.equal("rejected", answer.outcome)
      local log = g:error_log()
      assert.matches("Needs authority WORKFLOW_INSTANCE_START", log)
      assert.is_nil(body:find(limited.uaa.clientsecret, 1, true))
      assert.is_nil(log:find(limited.uaa.clientsecret, 1, true))
      assert.is_nil(log:find("Bearer ", 1, true))
    end)
    g:stop()
    assert(ok, err)
  end)

  describe("in each nginx phase", function()
    -- No warm_up here, and room for two Lua states only: calls beyond that wait for one.
    local CONF = ngx_conf(4, [[
  lua_worker_thread_vm_pool_size 2;
  init_by_lua_block {
    local sapwf_ngx = require "sapwf.ngx"
    SPEC = { wf = assert(sapwf_ngx.new{ service_key = os.getenv("SAPWF_SERVICE_KEY") }) }
    SPEC.init = select(2, pcall(SPEC.wf.definitions, SPEC.wf))
    -- w's stored token as a worker finds it near its expiry: `left` seconds, under the 60 s
    -- margin
    function SPEC.near_expiry(w, left)
      assert(w:token())
      local tokens = w._core.tokens
      local entry = tokens:read()
      entry.e = ngx.now() + left
      tokens.dict:set(tokens.key, require("cjson").encode(entry))
    end
  }
  init_worker_by_lua_block {
    -- a pool nginx.conf lacks: the README says warm_up reports it in the error log
    require("sapwf.ngx").warm_up{ thread_pool = "elsewhere", vms = 1 }
    SPEC.init_worker = select(2, pcall(SPEC.wf.definitions, SPEC.wf))
    ngx.timer.at(0, function()
      local list, err = SPEC.wf:definitions()
      SPEC.timer = list and "definitions " .. #list or tostring(err)
    end)
  }
  server {
    listen 127.0.0.1:{{PORT}};
    location = /seen {
      content_by_lua_block {
        ngx.say(require("cjson").encode({ init = SPEC.init, init_worker = SPEC.init_worker,
          timer = SPEC.timer, header_filter = SPEC.header_filter, log = SPEC.log }))
      }
    }
    location = /rewrite {
      rewrite_by_lua_block { ngx.say("definitions ", #assert(SPEC.wf:definitions())) ngx.exit(200) }
    }
    location = /access {
      access_by_lua_block { ngx.say("definitions ", #assert(SPEC.wf:definitions())) ngx.exit(200) }
    }
    location = /content {
      content_by_lua_block { ngx.say("definitions ", #assert(SPEC.wf:definitions())) }
    }
    location = /filters {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block {
        SPEC.header_filter = select(2, pcall(SPEC.wf.definitions, SPEC.wf))
      }
      log_by_lua_block { SPEC.log = select(2, pcall(SPEC.wf.definitions, SPEC.wf)) }
    }
    location = /token {
      content_by_lua_block {
        local t1, left, scope = assert(SPEC.wf:token())
        local t2 = assert(SPEC.wf:token(true))
        local t3 = assert(SPEC.wf:token())
        ngx.say(require("cjson").encode({ left = left, start = scope:find("WORKFLOW_INSTANCE_START", 1, true) ~= nil,
                                          renewed = t1 ~= t2, kept = t2 == t3 }))
      }
    }
    location = /killed-fetch {
      content_by_lua_block {
        -- no token in the dict: the light thread's call fetches one, and dies meanwhile
        ngx.shared.sapwf_tokens:flush_all()
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                    timeout = 5 })
        local th = ngx.thread.spawn(function() return wf:token() end)
        ngx.sleep(0.2)
        assert(ngx.thread.kill(th))
        ngx.update_time()
        local t0 = ngx.now()
        local t, err = wf:token()
        ngx.update_time()
        ngx.say(t and "token" or tostring(err), "|", ngx.now() - t0)
      }
    }
    location = /token-wait {
      content_by_lua_block {
        -- another client's token fetch is under way (slow): this call waits for it at most
        -- for its own timeout
        ngx.shared.sapwf_tokens:flush_all()
        local key = os.getenv("SAPWF_SERVICE_KEY")
        local slow = assert(require("sapwf.ngx").new{ service_key = key })
        local quick = assert(require("sapwf.ngx").new{ service_key = key, timeout = 0.5,
                                                       retries = 0 })
        local th = ngx.thread.spawn(function() return slow:token() end)
        ngx.sleep(0.2)
        ngx.update_time()
        local t0 = ngx.now()
        local list, err = quick:definitions()
        ngx.update_time()
        local took = ngx.now() - t0
        ngx.thread.wait(th)
        ngx.say(list and "listed" or err.kind .. ": " .. err.message, "|", took)
      }
    }
    location = /renewal-fails {
      content_by_lua_block {
        local w = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                   retries = 0 })
        SPEC.near_expiry(w, 5)
        local list, err = w:definitions()
        ngx.say(list and "listed" or tostring(err))
      }
    }
    location = /renewal-slow {
      content_by_lua_block {
        -- a timeout of 1 s, the token endpoint 3 s late: the renewal must not be waited for
        local w = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                   timeout = 1, retries = 0 })
        SPEC.near_expiry(w, 30)
        ngx.update_time()
        local t0 = ngx.now()
        local list, err = w:definitions()
        ngx.update_time()
        ngx.say(list and "listed" or tostring(err), "|", ngx.now() - t0)
      }
    }
    location = /vm-wait {
      content_by_lua_block {
        -- both Lua states of the threads (lua_worker_thread_vm_pool_size 2) busy with slow
        -- calls: this call waits for one at most for its own timeout
        local key = os.getenv("SAPWF_SERVICE_KEY")
        local slow = assert(require("sapwf.ngx").new{ service_key = key, retries = 0 })
        assert(slow:token())
        local quick = assert(require("sapwf.ngx").new{ service_key = key, timeout = 0.5,
                                                       retries = 0 })
        local busy = {}
        for i = 1, 2 do busy[i] = ngx.thread.spawn(function() return slow:definitions() end) end
        ngx.sleep(0.2)
        ngx.update_time()
        local t0 = ngx.now()
        local list, err = quick:definitions()
        ngx.update_time()
        local took = ngx.now() - t0
        for i = 1, 2 do ngx.thread.wait(busy[i]) end
        ngx.say(list and "listed" or err.kind .. ": " .. err.message, "|", took)
      }
    }
    location = /killed-call {
      content_by_lua_block {
        local w = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY") })
        assert(w:token())
        local th = ngx.thread.spawn(function() return w:definitions() end)
        ngx.sleep(0.2)
        assert(ngx.thread.kill(th))
        ngx.say("killed")
      }
    }
    location = /header-redacted {
      content_by_lua_block {
        local key = os.getenv("SAPWF_SERVICE_KEY")
        local w = assert(require("sapwf.ngx").new{ service_key = key, retries = 0,
          headers = { APIKey = "gw-key-4711-abcdef", ["X-Region"] = "eu" } })
        local _, err = w:definitions()
        local many = {}
        for i = 1, 28 do many["X-H" .. i] = "value-of-header-" .. i end
        local ok, raised = pcall(require("sapwf.ngx").new, { service_key = key, headers = many })
        ngx.say(err and err.message or "listed", "|", ok and "made" or raised)
      }
    }
    location = /carried-redacted {
      content_by_lua_block {
        local w = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                   retries = 0 })
        assert(w:token())
        -- a slow call whose answer quotes the token it carried (the spec's fault) ...
        local slow = ngx.thread.spawn(function() return w:forms() end)
        ngx.sleep(0.2)
        -- ... while two renewals go out, each with a call that carries the new token
        local renewed = {}
        for i = 1, 2 do
          renewed[i] = assert(w:token(true))
          assert(w:definitions())
        end
        local _, list, err = ngx.thread.wait(slow)
        ngx.say(list and "listed" or err.message, "|", renewed[1] ~= renewed[2] and "renewed"
          or "same token")
      }
    }
    location = /wrong-secret {
      content_by_lua_block {
        assert(SPEC.wf:token())                 -- a token in the dict for the right secret
        local w = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                   client_secret = "wrong-secret-4711", retries = 0 })
        local list, err = w:definitions()
        ngx.say(list and "listed" or err.kind)
      }
    }
    location = /replay-deadline {
      content_by_lua_block {
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                    timeout = 2, retries = 0 })
        if ngx.var.arg_warm then assert(wf:token()) return ngx.say("warm") end
        ngx.update_time()
        local t0 = ngx.now()
        local inst, err = wf:start("simple", {})
        ngx.update_time()
        ngx.say(inst and "started" or err.kind, "|", ngx.now() - t0)
      }
    }
    location = /lock-ttl {
      content_by_lua_block {
        -- timeout = 0 (no limit): the lock of a fetch must still expire
        local dict = ngx.shared.sapwf_tokens
        dict:flush_all()
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                    timeout = 0 })
        local th = ngx.thread.spawn(function() return wf:token() end)
        -- until the fetch (0.5 s) has begun under the lock, which it then keeps
        local ttl = "no lock"
        for _ = 1, 200 do
          ngx.sleep(0.01)
          for _, k in ipairs(dict:get_keys(0)) do
            if k:sub(-5) == ":lock" then ttl = dict:ttl(k) end
          end
          if type(ttl) == "number" and ttl > 1 then break end
        end
        ngx.thread.wait(th)
        ngx.say(ttl)
      }
    }
    location = /no-pool {
      content_by_lua_block {
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                    thread_pool = "elsewhere" })
        local list, err = wf:definitions()
        ngx.say(err.kind, "|", tostring(err))
      }
    }
    location = /no-dict {
      content_by_lua_block {
        local wf, err = require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
                                                  shared_dict = "elsewhere" }
        ngx.say(tostring(wf), "|", err.kind, "|", tostring(err))
      }
    }
    location = /api-key {
      content_by_lua_block {
        local new = require("sapwf.ngx").new
        local key = os.getenv("SAPWF_SERVICE_KEY")
        local plain = assert(new{ service_key = key })
        local _, err = plain:definitions()
        local keyed = assert(new{ service_key = key, headers = { APIKey = ngx.var.arg_key } })
        local list, err2 = keyed:definitions()
        ngx.say(err and err.status, "|", list and #list or tostring(err2), "|", tostring(keyed))
      }
    }
    location = /export {
      content_by_lua_block {
        local bytes, err = SPEC.wf:export(ngx.var.arg_file)
        ngx.say(bytes or err.kind, "|", bytes and "" or tostring(err))
      }
    }
    location = /bad-options {
      content_by_lua_block {
        local new = require("sapwf.ngx").new
        local key = os.getenv("SAPWF_SERVICE_KEY")
        ngx.say(select(2, pcall(new, { service_key = key, thread_pool = 5 })))
        ngx.say(select(2, pcall(new, { service_key = key, timout = 5 })))
        ngx.say(select(2, pcall(new, { service_key = key, timeout = -1 })))
      }
    }
  }
]])
    local g
    gateway_for_block(CONF, function(started) g = started end)

    it("calls from rewrite, access and content handlers and from timers", function()
      for _, where in ipairs({ "/rewrite", "/access", "/content" }) do
        local status, body = g:curl(where)
        assert.equal(200, status, where)
        assert.equal("definitions 3\n", body, where)
      end
      local seen
      for _ = 1, 100 do
        seen = decode(select(2, g:curl("/seen")))
        if seen.timer then break end
        shell.sleep(0.05)
      end
      assert.equal("definitions 3", seen.timer)
    end)

    it("raises, naming the phase and what to do, in init, init_worker, header_filter and log",
       function()
      assert.equal(200, (g:curl("/filters")))
      local seen = decode(select(2, g:curl("/seen")))
      for _, phase in ipairs({ "init", "init_worker", "header_filter", "log" }) do
        local message = seen[phase]
        assert.is_string(message, phase)
        assert.matches("cannot run in the " .. phase .. " phase", message, 1, true)
        assert.matches("ngx.timer.at(0, function() ... end)", message, 1, true)
      end
    end)

    it("waits for a free Lua state when nginx has none", function()
      local result = g:load("/content", 12, 12, "").wait()
      assert.equal(12, #result.statuses)
      for i = 1, 12 do
        assert.equal(200, result.statuses[i])
        assert.equal("definitions 3\n", result.bodies[i])
      end
    end)

    it("shares one token and renews it when asked", function()
      assert.equal(200, (g:curl("/content")))
      local before = emu:stats().token_requests
      local status, body = g:curl("/token")
      assert.equal(200, status)
      local answer = decode(body)
      assert.is_true(answer.left > 40000)
      assert.is_true(answer.start)
      assert.is_true(answer.renewed)
      assert.is_true(answer.kept)
      assert.equal(before + 1, emu:stats().token_requests)
    end)

    -- An API gateway's key in front of the service: the headers option reaches the worker
    -- threads' clients, and a client without it is refused; the key is never shown.
    it("sends the headers option with every call", function()
      local api_key = "gw-key-" .. ("k"):rep(20)
      emu:api_key("APIKey", api_key)
      local status, body = g:curl("/api-key?key=" .. api_key)
      emu:api_key(nil)
      assert.equal(200, status)
      local without, count, shown = body:match("^(%d+)|(%d+)|(.*)\n$")
      assert.equal("401", without, body)
      assert.equal("3", count, body)
      assert.is_nil(shown:find(api_key, 1, true))
      assert.is_nil(g:error_log():find(api_key, 1, true))
    end)

    -- wf:export writes the zip as it comes, from the worker thread.
    it("writes the export to a file", function()
      local dir = helpers.temp_dir()
      assert(helpers.execute("chmod 0777 " .. dir))          -- nginx's workers are nobody
      emu:export_lines(100000)
      local status, body = g:curl("/export?file=" .. dir .. "/ngx.zip")
      emu:export_lines(0)
      local text = helpers.read_file(dir .. "/ngx.zip")
      os.execute("rm -rf " .. dir)
      assert.equal(200, status)
      assert.equal("900000|\n", body)
      assert.equal(900000, #text)
      assert.equal("00000001\n", text:sub(1, 9))
      assert.equal("00100000\n", text:sub(-9))
    end)

    -- The answer "a|b" of path, asked while the emulator has fault.
    local function answer_with(fault, path)
      emu:fault(fault)
      local status, body = g:curl(path)
      emu:clear_faults()
      assert.equal(200, status, body)
      local a, b = body:match("^(.-)|(.*)\n$")
      return a, b, body
    end

    it("a light thread killed while it fetches the token: its fetch ends and is stored, " ..
       "and the next call does not wait for the lock", function()
      local before = emu:stats().token_requests
      local got, waited, body = answer_with({ fault = "delay", delay = 0.6, times = 1,
                                              path = "/oauth/token" }, "/killed-fetch")
      assert.equal("token", got, body)
      -- the killed thread's fetch, 0.6 s long, is the one the call waited for: no lock left
      -- behind for the lock's lifetime (10 s here), no second fetch
      assert.is_true(tonumber(waited) < 1, "waited " .. waited .. " s")
      assert.equal(before + 1, emu:stats().token_requests)
      assert.is_nil(g:error_log():find("token fetch failed", 1, true), g:error_log())
    end)

    it("a call's timeout bounds its wait for another client's token fetch", function()
      local got, took, body = answer_with({ fault = "delay", delay = 1.2, times = 1,
                                            path = "/oauth/token" }, "/token-wait")
      assert.equal("timeout: the call's timeout ran out while it waited for a token fetch",
                   got)
      assert.is_true(tonumber(took) < 0.9, "took " .. took .. " s: " .. body)
    end)

    it("a failed renewal that quotes the secret: the valid token serves, the log's warning " ..
       "has it redacted", function()
      local basic = require("spec.support.reliability").base64(key.uaa.clientid .. ":" .. secret)
      local status, body = nil, nil
      emu:fault{ fault = "body", status = 401, times = 1, path = "/oauth/token",
                 body = cjson.encode{ error = "invalid_client", error_description =
                   "refused " .. secret .. " with " .. basic } }
      status, body = g:curl("/renewal-fails")
      assert.equal(200, status, body)
      assert.equal("listed\n", body)
      -- the renewal runs in a timer of its own, which logs its failure
      local wanted = "renewing the token failed, still using the old one: refused [redacted] "
        .. "with [redacted]"
      local log
      for _ = 1, 50 do
        log = g:error_log()
        if log:find(wanted, 1, true) then break end
        require("sapwf.core").sleep(0.05)
      end
      emu:clear_faults()
      assert.matches(wanted, log, 1, true)
      assert_no_secret(log)
      assert.is_nil(log:find(basic, 1, true))
    end)

    it("a renewal near expiry never holds up the call that starts it: the valid token " ..
       "serves at once, however slow the token endpoint", function()
      local got, took, body = answer_with({ fault = "delay", delay = 3, times = 1,
                                            path = "/oauth/token" }, "/renewal-slow")
      assert.equal("listed", got, body)
      assert.is_true(tonumber(took) < 0.8, "took " .. took .. " s: " .. body)
    end)

    it("a call's timeout bounds its wait for a free Lua state of the threads", function()
      local got, took, body = answer_with({ fault = "delay", delay = 1.2, times = 2,
        method = "GET", path = "/v1/workflow-definitions" }, "/vm-wait")
      assert.matches("^timeout: no free Lua state for nginx's worker threads within 0%.", got)
      assert.is_true(tonumber(took) < 0.9, "took " .. took .. " s: " .. body)
    end)

    it("a light thread killed during its call: the request still ends at once", function()
      emu:fault{ fault = "delay", delay = 1.5, times = 1, method = "GET",
                 path = "/v1/workflow-definitions" }
      local status, body, seconds = g:curl("/killed-call")
      emu:clear_faults()
      assert.equal(200, status, body)
      assert.equal("killed\n", body)
      assert.is_true(seconds < 1, "took " .. seconds .. " s")
    end)

    it("a server's text that quotes a headers value: redacted, as by the plain client",
       function()
      local message, made, body = answer_with({ fault = "body", status = 400, times = 1,
        method = "GET", path = "/v1/workflow-definitions",
        body = cjson.encode{ error = { message = "bad key gw-key-4711-abcdef in eu" } } },
        "/header-redacted")
      assert.equal("bad key [redacted] in eu", message, body)
      -- more values than redact can take out: refused when the client is made
      assert.matches("at most 27 headers with a value of 8 bytes or more", made, 1, true)
      assert.is_nil(g:error_log():find("gw-key-4711-abcdef", 1, true))
    end)

    it("an answer that quotes the token its request carried, two renewals ago: redacted",
       function()
      local got, renewed, body = answer_with({ fault = "body", status = 400, times = 1,
        delay = 1, method = "GET", path = "/v1/forms",
        body = cjson.encode{ error = { message = "token {token} refused" } } },
        "/carried-redacted")
      assert.equal("renewed", renewed, body)
      -- (a failure here names no text: it would print the token)
      assert.is_true(got == "token [redacted] refused", "the carried token is not redacted")
    end)

    it("a client with a wrong secret fails at once, never using another client's token",
       function()
      local before = emu:stats().token_requests
      local status, body = g:curl("/wrong-secret")
      assert.equal(200, status, body)
      assert.equal("auth", body:match("%S+"))
      assert.is_true(emu:stats().token_requests > before)
      assert.is_nil(g:error_log():find("wrong-secret-4711", 1, true))
    end)

    it("a 401's replay gets what is left of the call's timeout, not a new one", function()
      assert.equal(200, (g:curl("/replay-deadline?warm=1")))
      emu:expire_tokens()                       -- the next start meets a 401, then replays
      local outcome, took, body = answer_with({ fault = "delay", delay = 1.3, times = 2,
        method = "POST", path = "/v1/workflow-instances" }, "/replay-deadline")
      assert.equal("timeout", outcome, body)
      assert.is_true(tonumber(took) < 2.4, "took " .. took .. " s")
    end)

    it("with timeout = 0, the token lock still expires", function()
      emu:fault{ fault = "delay", delay = 0.5, times = 1, path = "/oauth/token" }
      local status, body = g:curl("/lock-ttl")
      emu:clear_faults()
      assert.equal(200, status, body)
      local ttl = tonumber(body)
      -- taken for a second, the lock lasts 300 s once the fetch under it began
      assert.is_true(ttl ~= nil and ttl > 250 and ttl <= 300, body)
    end)

    it("warm_up reports a thread pool nginx.conf lacks in the error log", function()
      assert.matches("sapwf.ngx: warming up the worker threads failed: nginx has no thread "
        .. "pool 'elsewhere': add `thread_pool elsewhere threads=32;`", g:error_log(), 1, true)
    end)

    it("says which nginx.conf line is missing", function()
      local _, body = g:curl("/no-pool")
      assert.matches("^config|", body)
      assert.matches("nginx has no thread pool 'elsewhere': add `thread_pool elsewhere "
                     .. "threads=32;` to nginx.conf", body, 1, true)
      _, body = g:curl("/no-dict")
      assert.matches("nil|config|", body, 1, true)
      assert.matches("nginx has no lua_shared_dict 'elsewhere': add `lua_shared_dict "
                     .. "elsewhere 1m;`", body, 1, true)
    end)

    it("raises for bad options in new, naming them", function()
      local _, body = g:curl("/bad-options")
      local lines = {}
      for line in body:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.matches("bad option 'thread_pool' %(string expected, got number%)", lines[1])
      assert.matches("bad option 'timout' %(unknown option%)", lines[2])
      assert.matches("bad option 'timeout'", lines[3])
    end)
  end)

  describe("map and start_many", function()
    -- Items run in light threads, each call in the thread pool: 16 threads, so 20 starts at
    -- concurrency 10 take two rounds of the service's delay.
    local CONF = ngx_conf(16, [[
  init_by_lua_block {
    SPEC = { wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY") }) }
  }
  server {
    listen 127.0.0.1:{{PORT}};
    location = /many {
      content_by_lua_block {
        local items, progress = {}, {}
        for i = 1, 20 do
          items[i] = { definitionId = i % 2 == 1 and "simple" or "no-such-definition",
                       context = { i = i } }
        end
        ngx.update_time()
        local t0 = ngx.now()
        local results = SPEC.wf:start_many(items, { concurrency = 10,
          on_progress = function(done, total) progress[#progress + 1] = done .. "/" .. total end })
        ngx.update_time()
        local shape = {}
        for i, r in ipairs(results) do
          shape[i] = require("sapwf").is_error(r) and r.kind or r.status
        end
        ngx.say(require("cjson").encode({ seconds = ngx.now() - t0, shape = shape,
                                          progress = progress }))
      }
    }
    location = /many-429 {
      content_by_lua_block {
        local events = {}
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
          backoff_base = 0.05, backoff_max = 0.05,
          log = function(e) events[#events + 1] = e.event .. ":" .. tostring(e.status) end })
        local items = {}
        for i = 1, 4 do items[i] = { definitionId = "simple", context = { i = i } } end
        local started = 0
        for _, r in ipairs(wf:start_many(items, { concurrency = 4,
                                                  adaptive = ngx.var.arg_adaptive ~= "false" })) do
          if not require("sapwf").is_error(r) then started = started + 1 end
        end
        ngx.say(started, "|", table.concat(events, ","))
      }
    }
    location = /limit {
      content_by_lua_block {
        local adaptive = ngx.var.arg_adaptive ~= "false"
        local backoffs, least, refusals = 0, 64, 0
        local wf = assert(require("sapwf.ngx").new{ service_key = os.getenv("SAPWF_SERVICE_KEY"),
          log = function(e)
            if e.event == "concurrency" and e.reason == "backoff" then
              backoffs = backoffs + 1
              if e.concurrency < least then least = e.concurrency end
            elseif e.event == "rate_limited" then
              refusals = refusals + 1
            end
          end })
        local n, handed, twice, failed = 0, {}, 0, 0
        local count = wf:start_each(function()
          n = n + 1
          if n <= 200 then return { definitionId = "simple", context = { order = n } } end
        end, function(i, r)
          if handed[i] then twice = twice + 1 end
          handed[i] = true
          if require("sapwf").is_error(r) then failed = failed + 1 end
        end, { concurrency = 64, adaptive = adaptive })
        ngx.say(require("cjson").encode({ count = count, handed = #handed, twice = twice,
          failed = failed, backoffs = backoffs, least = least, refusals = refusals }))
      }
    }
    location = /map-raises {
      content_by_lua_block {
        local ok, err = pcall(SPEC.wf.map, SPEC.wf, { 1, 2, 3 }, function(w, n)
          if n == 2 then error("item two broke", 0) end
          return assert(w:definitions())
        end)
        local ended = 0
        for _, r in pairs(err.results) do ended = ended + #r end
        ngx.say(tostring(ok), "|", tostring(err.cause), "|", ended > 0 and "results" or "none")
      }
    }
    location = /kept {
      content_by_lua_block {
        local kept
        SPEC.wf:map({ 1 }, function(w) kept = w; return assert(w:definitions()) end)
        local ok, err = pcall(kept.definitions, kept)
        ngx.say(tostring(ok), "|", tostring(err))
      }
    }
    location = /each {
      content_by_lua_block {
        local n, got = 0, {}
        local count = SPEC.wf:start_each(function()
          n = n + 1
          if n <= 20 then
            return { definitionId = n % 2 == 1 and "simple" or "no-such-definition",
                     context = { i = n } }
          end
        end, function(i, r, item)
          got[#got + 1] = { i = i, n = item.context.i,
                            shape = require("sapwf").is_error(r) and r.kind or r.status }
        end, { concurrency = 10 })
        ngx.say(require("cjson").encode({ count = count, got = got }))
      }
    }
    location = /each-raises {
      content_by_lua_block {
        local n, got = 0, 0
        local ok, err = pcall(SPEC.wf.start_each, SPEC.wf, function()
          n = n + 1
          if n == 6 then error("input broke", 0) end
          return { definitionId = "simple" }
        end, function() got = got + 1 end, { concurrency = 3 })
        ngx.say(tostring(ok), "|", tostring(err), "|", got, "|", n)
      }
    }
    location = /filters {
      content_by_lua_block { ngx.say("body") }
      log_by_lua_block {
        SPEC.log = select(2, pcall(SPEC.wf.start_many, SPEC.wf, { { definitionId = "simple" } }))
      }
    }
    location = /seen {
      content_by_lua_block { ngx.say(tostring(SPEC.log)) }
    }
  }
]])
    local g
    gateway_for_block(CONF, function(started) g = started end)
    after_each(function() emu:clear_faults() end)

    -- Under the tenant's rate limit as a plain client's batch (spec/53): each item reaches the
    -- server once and is handed over once, none fails, and the limit backs off.
    it("the adaptive limit: under the tenant's rate limit each item starts once and none " ..
       "fails; the limit backs off", function()
      emu:set_limits{ service_time = 0.02, rate = 100, burst = 20, count_key = "order" }
      finally(function() emu:set_limits{} end)
      local status, body = g:curl("/limit")
      assert.equal(200, status, body)
      local got = cjson.decode(body)
      assert.same({ 200, 200, 0, 0 }, { got.count, got.handed, got.twice, got.failed })
      local stats = emu:stats()
      assert.equal(200, stats.starts_keyed)           -- every item reached the server ...
      assert.equal(0, stats.starts_doubled)           -- ... once
      assert.is_true(stats.rate_limited > 0, "the bucket never refused: nothing was tested")
      assert.is_true(got.backoffs > 0 and got.least < 64, body)
      assert.is_true(got.refusals > 0, body)          -- 429s waited for the limit
    end)

    it("a 429 waits for the adaptive limit, not one of the retries; with adaptive = false " ..
       "it takes the ordinary retries", function()
      for _, adaptive in ipairs({ true, false }) do
        emu:fault{ fault = "status", status = 429, retry_after = 0, times = 2, method = "POST",
                   path = "/v1/workflow-instances" }
        local status, body = g:curl("/many-429?adaptive=" .. tostring(adaptive))
        emu:clear_faults()
        assert.equal(200, status, body)
        local started, events = body:match("^(%d+)|(.*)\n$")
        assert.equal("4", started, body)
        local _, retries = events:gsub("retry:429", "")
        local _, waits = events:gsub("rate_limited:429", "")
        if adaptive then
          assert.same({ 0, 2 }, { retries, waits }, events)
          assert.matches("concurrency:429", events, 1, true)
        else
          assert.same({ 2, 0 }, { retries, waits }, events)
        end
      end
    end)

    it("run items concurrently, results in input order, each failure in its place",
       function()
      emu:fault{ fault = "delay", delay = 0.3, times = -1, method = "POST",
                 path = "/v1/workflow-instances" }
      local before = emu:stats().instances_started
      local status, body = g:curl("/many")
      assert.equal(200, status, body)
      local result = decode(body)
      for i = 1, 20 do
        assert.equal(i % 2 == 1 and "RUNNING" or "not_found", result.shape[i], "item " .. i)
      end
      assert.equal(before + 10, emu:stats().instances_started)
      -- One after another: 20 x 0.3 s = 6 s. Ten at a time: two rounds, about 0.6 s.
      assert.is_true(result.seconds < 2.5, "took " .. result.seconds .. " s")
      assert.equal(20, #result.progress)
      assert.equal("20/20", result.progress[20])
    end)

    it("a start answered null is a decode error in its place; the rest run",
       function()
      emu:fault{ fault = "body", status = 201, body = "null", times = 1, method = "POST",
                 path = "/v1/workflow-instances" }
      local before = emu:stats().instances_started
      local status, body = g:curl("/many")
      assert.equal(200, status, body)
      local result = decode(body)
      local hit                       -- the item whose start got the fault: any one of them
      for i = 1, 20 do
        if result.shape[i] == "decode" then
          assert.is_nil(hit, "two items got the one fault")
          hit = i
        else
          assert.equal(i % 2 == 1 and "RUNNING" or "not_found", result.shape[i], "item " .. i)
        end
      end
      assert.is_number(hit, body)
      assert.equal(before + (hit % 2 == 1 and 9 or 10), emu:stats().instances_started)
    end)

    it("stream: each result reaches on_result with its index and item", function()
      local before = emu:stats().instances_started
      local status, body = g:curl("/each")
      assert.equal(200, status, body)
      local result = decode(body)
      assert.equal(20, result.count)
      assert.equal(20, #result.got)
      local seen = {}
      for _, r in ipairs(result.got) do
        assert.equal(r.i, r.n)
        assert.is_nil(seen[r.i])
        seen[r.i] = true
        assert.equal(r.i % 2 == 1 and "RUNNING" or "not_found", r.shape)
      end
      assert.equal(before + 10, emu:stats().instances_started)
    end)

    it("stream: a raise in next_item lets the starts in flight end and reach on_result",
       function()
      local before = emu:stats().instances_started
      local status, body = g:curl("/each-raises")
      assert.equal(200, status, body)
      assert.equal("false|input broke|5|6\n", body)
      assert.equal(before + 5, emu:stats().instances_started)
    end)

    -- As a plain client's batch (spec/50): w's requests pass the gate while the run lasts,
    -- and a w kept after it is refused rather than sent past the limiter of a run now over.
    it("refuse a w kept after its run, as a plain client's batch does", function()
      local before = emu:stats().api_requests
      local status, body = g:curl("/kept")
      assert.equal(200, status, body)
      assert.equal("false|sapwf: the client map gives fn (w) works only in fn's own calls "
        .. "while its run lasts, not after it nor in a coroutine fn made: call the client "
        .. "itself there\n", body)
      assert.equal(before + 1, emu:stats().api_requests)     -- fn's call only
    end)

    it("raise what a function given to map raises, with the results of the items that ended",
       function()
      local status, body = g:curl("/map-raises")
      assert.equal(200, status)
      assert.equal("false|item two broke|results\n", body)
    end)

    it("raise, naming the phase, where nginx has no light threads or worker threads",
       function()
      assert.equal(200, (g:curl("/filters")))
      local _, body = g:curl("/seen")
      assert.matches("wf:start_many%(%) cannot run in the log phase", body)
    end)
  end)

  it("names the build nginx needs when sapwf.core was built for Lua 5.4", function()
    gateway.build("lua5.4")
    local g = gateway.start{ key = key, links = { luajit = shell.line("pwd") .. "/build/lua5.4" },
      conf = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  lua_package_path "$prefix/lua/?.lua;$prefix/lua/?/init.lua;;";
  lua_package_cpath "$prefix/luajit/?.so;;";
  server {
    listen 127.0.0.1:{{PORT}};
    location / { content_by_lua_block { ngx.say(select(2, pcall(require, "sapwf.ngx"))) } }
  }
}
]] }
    local status, body = g:curl("/")
    g:stop()
    assert.equal(200, status)
    assert.matches("undefined symbol: lua_", body, 1, true)
    assert.matches("build it with `make LUA=luajit` and put build/luajit/ on package.cpath",
                   body, 1, true)
  end)

  describe("the bridge on four workers", function()
    local g
    gateway_for_block(function() return gateway.example_conf(4) end,
                      function(started) g = started end)
    after_each(function() emu:clear_faults() end)

    it("fetches exactly one token for 200 requests over all workers", function()
      local before = emu:stats()
      local result = g:load("/orders", 200, 50, '{"product":"Flash"}').wait()
      assert.equal(200, #result.statuses)
      for i = 1, 200 do assert.equal(201, result.statuses[i]) end
      local after = emu:stats()
      assert.equal(before.instances_started + 200, after.instances_started)
      assert.equal(before.token_requests + 1, after.token_requests)
      -- the claim is about several workers: they must all have taken part
      assert.is_true(worker_pids(g) >= 2, "only one worker answered")
    end)

    it("refreshes a token that the service rejects under load exactly once", function()
      assert.equal(201, (g:curl("/orders", [[-d '{"warm":true}']])))  -- a token is cached
      emu:fault{ fault = "delay", delay = 0.1, times = -1, method = "POST",
                 path = "/v1/workflow-instances" }
      local before = emu:stats()
      local load = g:load("/orders", 120, 24, '{"product":"Bag"}')
      shell.sleep(0.25)
      emu:expire_tokens()
      local result = load.wait()
      local after = emu:stats()
      for i = 1, 120 do assert.equal(201, result.statuses[i]) end
      assert.equal(before.instances_started + 120, after.instances_started)
      -- the expiry hit requests in flight: some were answered 401 ...
      local rejected = (after.api_responses_by_status["401"] or 0)
                       - (before.api_responses_by_status["401"] or 0)
      assert.is_true(rejected >= 1, "no request met the expired token")
      -- ... and one new token served them all
      assert.equal(before.token_requests + 1, after.token_requests)
    end)

    it("refuses a token answer with CR LF in access_token, and caches nothing bad", function()
      assert.equal(201, (g:curl("/orders", [[-d '{"warm":true}']])))  -- a token is cached
      emu:expire_tokens()
      emu:fault{ fault = "body", path = "/oauth/token", times = 1,
        body = [[{"access_token":"abc\r\nX-Injected: 1","token_type":"bearer","expires_in":600}]] }
      local before = emu:stats()
      local status, body = g:curl("/orders", [[-d '{"product":"Hat"}']])
      assert.equal(502, status)
      assert.equal("decode", decode(body).error)
      assert.is_nil(body:find("Injected", 1, true))
      -- the next request renews again and works: the refused token was never stored
      assert.equal(201, (g:curl("/orders", [[-d '{"product":"Hat"}']])))
      local after = emu:stats()
      assert.equal(before.instances_started + 1, after.instances_started)
      assert.equal(before.token_requests + 2, after.token_requests)
      assert.is_nil(g:error_log():find("Injected", 1, true))
    end)

    it("asks for at most one token a second from an API that refuses every token", function()
      assert.equal(201, (g:curl("/orders", [[-d '{"warm":true}']])))  -- a token is cached
      emu:fault{ fault = "status", status = 401, times = -1, method = "POST",
                 path = "/v1/workflow-instances" }
      local before = emu:stats()
      local t0 = gateway.now_ns()
      local result = g:load("/orders", 40, 1, '{"product":"Belt"}').wait()
      local seconds = (gateway.now_ns() - t0) / 1e9
      local after = emu:stats()
      for i = 1, 40 do assert.equal(502, result.statuses[i]) end
      -- one renewal at the first 401, then one more per second at most (each worker
      -- shares the dict, so the bound is for the whole server)
      local fetched = after.token_requests - before.token_requests
      assert.is_true(fetched >= 1 and fetched <= 2 + math.floor(seconds),
                     fetched .. " token requests in " .. seconds .. " s")
    end)

    it("makes one fetch for the requests waiting on it when that fetch fails", function()
      local wrong = emu:service_key("full")
      wrong.uaa.clientsecret = "not-the-secret-0000"
      with_own_gateway({ conf = gateway.example_conf(4), key = wrong }, function(g2)
        -- The token endpoint answers after 0.5 s: every request arrives during the one fetch.
        emu:fault{ fault = "delay", delay = 0.5, times = -1, path = "/oauth/token" }
        local before = emu:stats()
        local result = g2:load("/orders", 50, 50, '{"product":"Cap"}').wait()
        local after = emu:stats()
        for i = 1, 50 do
          assert.equal(502, result.statuses[i])
          local answer = decode(result.bodies[i])
          assert.equal("auth", answer.error)
          assert.equal(401, answer.status)
          assert.is_nil(result.bodies[i]:find(wrong.uaa.clientsecret, 1, true))
        end
        assert.equal(before.token_requests + 1, after.token_requests)
        assert.equal(before.api_requests, after.api_requests)
        assert.is_nil(g2:error_log():find(wrong.uaa.clientsecret, 1, true))
        assert.is_true(worker_pids(g2) >= 2, "only one worker answered")
      end)
    end)

    it("a shared dict too full to keep the token: the worker keeps it, one fetch, and the " ..
       "log says why", function()
      with_own_gateway({ key = key, conf = ngx_conf(2, [[
  lua_shared_dict crowded 64k;
  server {
    listen 127.0.0.1:{{PORT}};
    location = /fill {
      content_by_lua_block {
        local d, n = ngx.shared.crowded, 0
        while d:safe_set("k" .. n, "x") do n = n + 1 end
        ngx.say(n)
      }
    }
    location = /call {
      content_by_lua_block {
        CROWDED = CROWDED or assert(require("sapwf.ngx").new{
          service_key = os.getenv("SAPWF_SERVICE_KEY"), shared_dict = "crowded", retries = 0 })
        local list, err = CROWDED:definitions()
        ngx.say(list and "listed" or tostring(err))
      }
    }
  }
]]) }, function(g2)
        assert.equal(200, (g2:curl("/fill")))
        local before = emu:stats().token_requests
        for _ = 1, 3 do
          local status, body = g2:curl("/call")
          assert.equal(200, status, body)
          assert.equal("listed\n", body)
        end
        assert.equal(before + 1, emu:stats().token_requests)
        assert.matches("cannot keep the token in the shared dict", g2:error_log(), 1, true)
      end)
    end)

    it("a token fetch whose timer nginx drops (lua_max_running_timers used up): the " ..
       "request fetches itself, and the log says why", function()
      with_own_gateway({ key = key, conf = ngx_conf(2, [[
  lua_max_running_timers 1;
  server {
    listen 127.0.0.1:{{PORT}};
    location = /occupy {
      content_by_lua_block {
        assert(ngx.timer.at(0, function() ngx.sleep(3) end))
        ngx.sleep(0.1)
        ngx.say(ngx.timer.running_count())
      }
    }
    location /call {
      content_by_lua_block {
        local wf = assert(require("sapwf.ngx").new{
          service_key = os.getenv("SAPWF_SERVICE_KEY"), retries = 0,
          timeout = tonumber(ngx.var.arg_timeout) })
        -- the fetch lock's lifetime a tenth of a second into the call
        local probe = ngx.thread.spawn(function()
          ngx.sleep(0.1)
          local dict = ngx.shared.sapwf_tokens
          for _, k in ipairs(dict:get_keys(0)) do
            if k:sub(-5) == ":lock" then return dict:ttl(k) end
          end
          return "none"
        end)
        ngx.update_time()
        local t0 = ngx.now()
        local list, err = wf:definitions()
        ngx.update_time()
        local took = ngx.now() - t0
        local _, ttl = ngx.thread.wait(probe)
        ngx.say(list and "listed" or tostring(err), "|", took, "|", ttl)
      }
    }
  }
]]) }, function(g2)
        local status, body = g2:curl("/occupy")
        assert.equal(200, status, body)
        assert.equal("1\n", body)                  -- the one running timer is taken
        local before = emu:stats().token_requests
        -- out of time before the timer's grace: the lock is let go with the timer
        status, body = g2:curl("/call?timeout=0.2")
        assert.equal(200, status, body)
        assert.matches("^sapwf: timeout GET [^:]+: getting a token: the call.s timeout ran out "
                       .. "while it waited for a token fetch|",
                       body)
        -- while no fetch has begun under it, the lock lives a second, not its lifetime
        -- (timeout + 5 s): should the request be killed, the others wait that long at most
        local ttl = tonumber(body:match("|([^|]*)\n$"))
        assert.is_true(ttl ~= nil and ttl > 0 and ttl <= 1, body)
        status, body = g2:curl("/call?timeout=10")
        assert.equal(200, status, body)
        local got, took = body:match("^(.-)|([^|]*)|[^|]*\n$")
        assert.equal("listed", got, body)
        -- the timer's grace, not the lock's lifetime (15 s here)
        assert.is_true(tonumber(took) < 2, "took " .. took .. " s")
        assert.equal(before + 1, emu:stats().token_requests)
        local log = g2:error_log()
        assert.matches("lua_max_running_timers are not enough", log, 1, true)
        assert.matches("the token fetch's timer did not run (is lua_max_running_timers too "
                       .. "low?); fetching in the request", log, 1, true)
        -- That call's timer to hold the worker (for a reload) was dropped too. Once timers
        -- run again, the next call starts another: a reload waits for the call.
        require("sapwf.core").sleep(3.2 - tonumber(took))
        emu:set_limits({ service_time = 0.8 })
        finally(function() emu:set_limits({}) end)
        local calls = emu:stats().api_requests
        local load = g2:load("/call", 1, 1, "{}")
        -- the reload once the call is in the service's hands (0.8 s)
        for _ = 1, 100 do
          if emu:stats().api_requests > calls then break end
          require("sapwf.core").sleep(0.02)
        end
        assert.is_true(emu:stats().api_requests > calls, "the call never reached the service")
        assert.is_true(helpers.run("kill -HUP " .. g2.pid))
        local done = load.wait()
        assert.equal(200, done.statuses[1], done.bodies[1])
        assert.matches("^listed|", done.bodies[1])
      end)
    end)

    -- The fetch lock, white-box (sapwf.ngx.token with a counting fetch, no token endpoint):
    -- the lock a fetch begins under lapsed or was evicted meanwhile; and a fetch that
    -- begins late, after another worker stored an acceptable token.
    it("a fetch beginning under a lapsed or evicted lock takes it again; one beginning " ..
       "late uses the token stored meanwhile", function()
      with_own_gateway({ key = key, conf = ngx_conf(1, [[
  server {
    listen 127.0.0.1:{{PORT}};
    location = /lock {
      content_by_lua_block {
        local token = require "sapwf.ngx.token"
        local cjson = require "cjson.safe"
        local dict, out = ngx.shared.sapwf_tokens, {}
        local fetches = 0
        local function fetch() fetches = fetches + 1; return "fetched", 600, "s" end
        local t = token.new(dict, "white-box", 60, 30, fetch)
        -- lapsed (the dict no longer has it) and evicted (gone just the same): taken again,
        -- for the lock's lifetime
        local holder = t:lock()
        out.taken_for = dict:ttl(t.lock_key)
        dict:delete(t.lock_key)
        out.kept_lapsed = t:keep_lock(holder)
        out.holder_after = dict:get(t.lock_key) == holder
        out.kept_for = dict:ttl(t.lock_key)
        -- ours: extended
        out.kept_ours = t:keep_lock(holder)
        -- another's by now (taken for too short): not ours to fetch under
        dict:set(t.lock_key, "another:1", 30)
        out.kept_another = t:keep_lock(holder)
        out.another_stays = dict:get(t.lock_key) == "another:1"
        dict:delete(t.lock_key)
        -- late: the stored token is old; while this request waits for its timer's fetch,
        -- another worker stores a new one; the timer, beginning then, fetches nothing
        dict:set(t.key, cjson.encode({ t = "old", e = ngx.now() + 600, l = 600, s = "s" }))
        local asked = 0
        local function acceptable(entry)
          asked = asked + 1
          if asked == 2 then                    -- wait_for's first look: the other worker
            dict:set(t.key, cjson.encode({ t = "new", e = ngx.now() + 600, l = 600,
                                           s = "s" }))
          end
          return entry.t == "new"
        end
        holder = t:lock()
        local entry = t:locked_fetch(acceptable, holder, ngx.now() + 5, false)
        ngx.sleep(0.05)                         -- the timer has ended by now
        out.late_token = entry and entry.t
        out.fetches = fetches
        out.lock_left = dict:get(t.lock_key) ~= nil
        out.asked = asked
        ngx.say(cjson.encode(out))
      }
    }
  }
]]) }, function(g2)
        local status, body = g2:curl("/lock")
        assert.equal(200, status, body)
        local out = decode(body)
        assert.is_true(out.taken_for > 0 and out.taken_for <= 1, body)   -- LOCK_START_TTL
        assert.is_true(out.kept_lapsed, body)
        assert.is_true(out.holder_after, body)
        assert.is_true(out.kept_for > 25 and out.kept_for <= 30, body)    -- the lifetime
        assert.is_true(out.kept_ours, body)
        assert.is_false(out.kept_another, body)
        assert.is_true(out.another_stays, body)
        assert.equal("new", out.late_token, body)
        assert.equal(0, out.fetches, body)
        assert.is_false(out.lock_left, body)
        assert.is_true(out.asked >= 3, body)    -- the timer looked again, and found it
        assert.is_nil(g2:error_log():find("[error]", 1, true), g2:error_log())
      end)
    end)

    it("renews a token that nears its expiry exactly once under load", function()
      -- A client whose tokens live 6 s: renewed when less than 3 s are left (half the
      -- lifetime, as 6 s is under twice the 60 s margin). A load of 4.5 s sees one renewal.
      local short = emu:service_key("full")
      local id = "sb-short-lived!b1|workflow!b10150"
      emu:set_client(id, { secret = "short-secret-1234", expires_in = 6,
                           authorities = { "WORKFLOW_INSTANCE_START" } })
      short.uaa.clientid, short.uaa.clientsecret = id, "short-secret-1234"
      with_own_gateway({ conf = gateway.example_conf(4), key = short }, function(g2)
        local before = emu:stats().token_requests_by_client[id] or 0
        local statuses = {}
        local t_end = gateway.now_ns() + 4.5e9
        while gateway.now_ns() < t_end do
          local result = g2:load("/orders", 10, 10, '{"product":"Strap"}').wait()
          for _, s in ipairs(result.statuses) do statuses[#statuses + 1] = s end
          shell.sleep(0.1)
        end
        assert.is_true(#statuses >= 100)
        for _, s in ipairs(statuses) do assert.equal(201, s) end
        assert.equal(before + 2, emu:stats().token_requests_by_client[id])
      end)
    end)
  end)
end)
