-- The connect timeout, against a real listener whose accept queue is full (the kernel then
-- drops the SYNs, as an unreachable host would): the caller gets kind "timeout" within
-- connect_timeout, the request was surely not sent, and a start is safely sent again.
local sapwf = require "sapwf"
local helpers = require "spec.helpers"

local function now()
  local f = assert(io.popen("date +%s.%N"))
  local t = tonumber(f:read("*l"))
  f:close()
  return t
end

-- For the describe block that calls it: the emulator, and a spec/support Python listener
-- (script, then its arguments; "DIR" in them is a fresh folder) that prints its port, both
-- started before the block's tests and stopped after them. set(emu, port, dir) gets them.
local function with_listener(script, args, set)
  local emu, dir, pid
  setup(function()
    emu = helpers.start_emulator()
    local f = assert(io.popen("mktemp -d"))
    dir = f:read("*l")
    f:close()
    assert(os.execute("python3 spec/support/" .. script .. " " .. args:gsub("DIR", dir)
                      .. " > " .. dir .. "/port 2>" .. dir .. "/err & echo $! > " .. dir
                      .. "/pid"))
    local port
    for _ = 1, 100 do
      port = tonumber((helpers.read_file(dir .. "/port") or ""):match("^%d+"))
      if port then break end
      os.execute("sleep 0.05")
    end
    assert(port, script .. " did not start: " .. tostring(helpers.read_file(dir .. "/err")))
    pid = helpers.read_file(dir .. "/pid"):match("%d+")
    set(emu, port, dir)
  end)
  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
    if emu then emu:stop() end
  end)
end

describe("connect timeout", function()
  local emu, port
  with_listener("full_backlog.py", "60", function(e, p) emu, port = e, p end)

  -- A token fetch from the black hole with these timeouts: it fails as a timeout of the
  -- token step, nothing sent, after a time within [low, high) seconds.
  local function token_fetch_times_out(timeouts, low, high)
    local black_hole = "http://127.0.0.1:" .. port
    local opts = { api_url = black_hole .. "/workflow-service/rest",
      token_url = black_hole .. "/oauth/token", client_id = "c", client_secret = "s",
      retries = 0 }
    for k, v in pairs(timeouts) do opts[k] = v end
    local wf = assert(sapwf.new(opts))
    local started = now()
    local list, err = wf:definitions()
    local elapsed = now() - started
    assert.is_nil(list)
    assert.equal("timeout", err.kind)
    assert.equal("token", err.phase)
    assert.equal("not_sent", err.outcome)
    assert.is_true(elapsed >= low and elapsed < high, elapsed)
    wf:close()
  end

  it("bounds a token fetch that cannot connect", function()
    token_fetch_times_out({ connect_timeout = 0.4 }, 0.35, 1.5)
  end)

  -- README: "0: libcurl's default (300 s)": not "give up at once"; `timeout` still bounds it.
  it("with connect_timeout = 0, waits for the connection until the whole timeout", function()
    token_fetch_times_out({ connect_timeout = 0, timeout = 0.8 }, 0.75, 2)
  end)

  it("sends a start again when it could not connect, within the deadline", function()
    local key = emu:service_key("full")
    local wf = assert(sapwf.new{ service_key = key, connect_timeout = 0.3,
      api_url = "http://127.0.0.1:" .. port .. "/workflow-service/rest",
      retries = 2, backoff_base = 0.05, backoff_max = 0.05, retry_deadline = 5 })
    local started = now()
    local inst, err = wf:start("simple")
    local elapsed = now() - started
    assert.is_nil(inst)
    assert.equal("timeout", err.kind)
    assert.equal("not_sent", err.outcome)
    assert.equal(3, err.attempts)                  -- never sent, so safe to send again
    assert.is_true(elapsed >= 0.85 and elapsed < 3, elapsed)
    assert.equal(0, emu:stats().instances_started)
    wf:close()
  end)
end)

-- The proxy option: the token request and the API calls both go through the proxy it names
-- (a forward proxy for plain http://, spec/support/forward_proxy.py, which logs each
-- request's method and URL and no header).
describe("the proxy option", function()
  local emu, port, dir
  with_listener("forward_proxy.py", "DIR/log", function(e, p, d) emu, port, dir = e, p, d end)

  it("carries the token request and every API call", function()
    local key = emu:service_key("full")
    local wf = assert(sapwf.new{ service_key = key, proxy = "http://127.0.0.1:" .. port })
    assert(wf:definitions())
    local inst = assert(wf:start("simple", { n = 1 }))
    wf:close()
    local log = helpers.read_file(dir .. "/log")
    local api = key.endpoints.workflow_rest_url
    assert.matches("POST " .. key.uaa.url .. "/oauth/token\n", log, 1, true)
    assert.matches("GET " .. api .. "/v1/workflow-definitions", log, 1, true)
    assert.matches("POST " .. api .. "/v1/workflow-instances\n", log, 1, true)
    assert.equal(inst.id, emu:instances()[1].id)
    assert.equal(1, emu:stats().instances_started)
  end)
end)
