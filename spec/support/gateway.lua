-- A real nginx with its Lua module (LuaJIT) running sapwf.ngx, for the specs: the
-- example bridge of examples/nginx/ or a config of the spec's own, in a prefix directory of
-- its own on a free 127.0.0.1 port; plus a concurrent load of requests (curl --parallel).
--
--   local g = gateway.start{ conf = text, key = service_key_table }   -- raises if it fails
--   g.url, g.dir, g.pid;  g:error_log();  g:access_log();  g:stop()
--
-- The prefix holds what examples/nginx/nginx.conf expects (README, "OpenResty / nginx"):
-- copies of ./lua as lua, ./build/luajit as luajit, ./examples/nginx as nginx; key.json.
local shell = require "sapwf.emulator.shell"
local cjson = require "cjson"

local format, gsub = string.format, string.gsub
local quote = shell.quote

local gateway = {}

local Gateway = {}
Gateway.__index = Gateway

local function root()
  return shell.line("pwd")
end

--- Builds sapwf.core for LuaJIT (and any other `lua`) once per run; raises on failure.
local built = {}
function gateway.build(lua)
  lua = lua or "luajit"
  if built[lua] then return end
  local out = shell.capture("make --no-print-directory LUA=" .. lua .. " 2>&1; echo \"exit $?\"")
  if not out:find("exit 0\n$") then error("make LUA=" .. lua .. " failed:\n" .. out, 2) end
  built[lua] = true
end

-- Replaces the one occurrence of `find` (plain text) in text; raises when it is not there
-- exactly once, so a change of the example is noticed here rather than tested around.
local function replace_once(text, find, by)
  local escaped = gsub(find, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  local out, n = gsub(text, escaped, (gsub(by, "%%", "%%%%")))
  if n ~= 1 then error(format("expected '%s' once in the config, found it %d times", find, n), 3) end
  return out
end

--- examples/nginx/nginx.conf for a test: `workers` worker processes, the port as {{PORT}},
-- reuseport (so the kernel spreads connections over all workers), and an access log of the
-- worker pid per request. Everything else as shipped.
function gateway.example_conf(workers)
  local text = assert(shell.read_file("examples/nginx/nginx.conf"))
  text = replace_once(text, "worker_processes 1;", "worker_processes " .. (workers or 1) .. ";")
  text = replace_once(text, "listen 127.0.0.1:8080;", "listen 127.0.0.1:{{PORT}} reuseport;")
  text = replace_once(text, "access_log off;",
                      "log_format worker '$pid $status $request_uri';\n"
                      .. "  access_log logs/access.log worker;")
  return text
end

--- Starts nginx. opts: conf (text with {{PORT}}), key (a service key table, written to
-- key.json and named by SAPWF_SERVICE_KEY), links (extra name -> path links in the prefix).
function gateway.start(opts)
  local here = root()
  local dir = shell.line("mktemp -d /tmp/sapwf-gateway.XXXXXX")
  assert(dir ~= "", "mktemp failed")
  -- nginx's workers run as nobody when the master is root: they must reach the prefix, and
  -- what they load. The checkout may sit where only root may enter (/root, a mktemp -d), so
  -- the files are copied into the prefix rather than linked, as a deployment would.
  assert(shell.run(format("chmod 755 %s && mkdir %s", quote(dir), quote(dir .. "/logs"))))
  local links = { lua = here .. "/lua", luajit = here .. "/build/luajit",
                  nginx = here .. "/examples/nginx" }
  for name, path in pairs(opts.links or {}) do links[name] = path end
  for name, path in pairs(links) do
    assert(shell.run(format("cp -RL %s %s && chmod -R a+rX %s", quote(path),
                            quote(dir .. "/" .. name), quote(dir .. "/" .. name))))
  end
  local env = ""
  if opts.key then
    shell.write_file(dir .. "/key.json", cjson.encode(opts.key))
    env = "SAPWF_SERVICE_KEY=" .. quote(dir .. "/key.json") .. " "
  end
  local self = setmetatable({ dir = dir }, Gateway)
  local message
  for _ = 1, 8 do
    self.port = shell.random_port()
    shell.write_file(dir .. "/nginx.conf", (gsub(opts.conf, "{{PORT}}", self.port)))
    local err_file = dir .. "/logs/start.err"
    if shell.run(format("%snginx -p %s -c %s >%s 2>&1", env, quote(dir),
                        quote(dir .. "/nginx.conf"), quote(err_file))) then
      message = nil
      break
    end
    message = shell.read_file(err_file) or ""
    if not message:find("Address already in use", 1, true) then break end
  end
  if message then
    shell.run("rm -rf " .. quote(dir))
    error("nginx did not start: " .. message, 2)
  end
  for _ = 1, 500 do
    self.pid = tonumber((shell.read_file(dir .. "/logs/nginx.pid") or ""):match("%d+"))
    if self.pid then break end
    shell.sleep(0.01)
  end
  assert(self.pid, "nginx wrote no pid file")
  self.url = "http://127.0.0.1:" .. self.port
  return self
end

function Gateway:error_log()
  return shell.read_file(self.dir .. "/logs/error.log") or ""
end

function Gateway:access_log()
  return shell.read_file(self.dir .. "/logs/access.log") or ""
end

--- curl against the gateway: returns status, body, seconds taken.
function Gateway:curl(path, args)
  local out = shell.capture(format("curl -s -m 30 %s -w '\\n%%{http_code} %%{time_total}' %s",
                                   args or "", quote(self.url .. path)))
  local body, status, seconds = out:match("^(.*)\n(%d+) ([%d%.]+)$")
  return tonumber(status), body, tonumber(seconds)
end

--- POSTs body (a string) to path n times, `parallel` at a time, in the background.
-- Returns a load; load:done() tells whether it finished; load:wait() waits and returns
-- { statuses = {...}, bodies = {...}, started = ns, ended = ns, seconds = }.
function Gateway:load(path, n, parallel, body)
  self.loads = (self.loads or 0) + 1
  local dir = format("%s/load%d", self.dir, self.loads)
  assert(shell.run("mkdir " .. quote(dir)))
  shell.write_file(dir .. "/body", body)
  local script = format("start=$(date +%%s%%N); curl -s -m 60 --parallel --parallel-immediate "
    .. "--parallel-max %d -H 'Content-Type: application/json' --data-binary @%s "
    .. "-o %s -w '%%{http_code}\\n' %s >%s; end=$(date +%%s%%N); "
    .. "echo \"$start $end\" >%s && mv %s %s",
    parallel, quote(dir .. "/body"), quote(dir .. "/resp_#1"),
    quote(format("%s%s?n=[1-%d]", self.url, path, n)), quote(dir .. "/statuses"),
    quote(dir .. "/times.tmp"), quote(dir .. "/times.tmp"), quote(dir .. "/times"))
  assert(shell.run("sh -c " .. quote(script) .. " >/dev/null 2>&1 &"))
  local load = { dir = dir, n = n }
  function load.done() return shell.read_file(dir .. "/times") ~= nil end
  function load.wait()
    for _ = 1, 6000 do
      if load.done() then break end
      shell.sleep(0.01)
    end
    local times = assert(shell.read_file(dir .. "/times"), "the load did not finish in 60 s")
    local started, ended = times:match("^(%d+) (%d+)")
    local result = { statuses = {}, bodies = {}, started = tonumber(started),
                     ended = tonumber(ended) }
    result.seconds = (result.ended - result.started) / 1e9
    for status in (shell.read_file(dir .. "/statuses") or ""):gmatch("%d+") do
      result.statuses[#result.statuses + 1] = tonumber(status)
    end
    for i = 1, n do result.bodies[i] = shell.read_file(dir .. "/resp_" .. i) end
    return result
  end
  return load
end

--- Nanoseconds since the epoch, as the load's `started` and `ended` are.
function gateway.now_ns()
  return tonumber(shell.line("date +%s%N"))
end

function Gateway:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    shell.run("kill -TERM " .. self.pid .. " 2>/dev/null")
    for _ = 1, 500 do
      if not shell.running(self.pid) then break end
      shell.sleep(0.01)
    end
  end
  shell.run("rm -rf " .. quote(self.dir))
end

return gateway
