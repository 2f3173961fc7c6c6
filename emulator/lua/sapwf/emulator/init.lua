-- Starts and stops the local emulator of XSUAA and the SAP Workflow API v1 (Cloud Foundry):
-- nginx with its Lua module, in a prefix directory of its own, on free 127.0.0.1 ports.
-- Plain Lua 5.1 to 5.4; it runs in the test process and uses only os/io and the nginx,
-- openssl and curl commands (plus lua-cjson to read the control API's answers).
--
--   local emulator = require "sapwf.emulator"
--   local emu = assert(emulator.start{ ... })     -- or nil, message
--     options: dir (prefix directory; default a fresh mktemp -d, removed by stop()),
--     workers (1), tls (true: also the HTTPS and mTLS listeners and the certificates),
--     http2 (false: true makes the HTTPS listener offer HTTP/2 as well; needs tls),
--     max_instances (20000 per worker, 0 = no limit: beyond it the oldest instance is
--     dropped), log_level ("warn"), nginx (the binary), modules_dir (/usr/lib/nginx/modules),
--     spa (false: true makes it an SAP Build Process Automation tenant: SPA service keys,
--     the API under /public/workflow/rest and /workflow/rest, SPA definition ids, trigger
--     inputs, 415 without a JSON Content-Type; see server/spa.lua), key_memory (32: megabytes
--     for the values of set_limits' count_key, about 8,000 a megabyte: 128 for a million)
--   emu.url, emu.https_url, emu.mtls_url       "http://127.0.0.1:PORT" (https ones: tls only)
--   emu.ca_file                                 CA that signed the server and client certs
--   emu.client_cert_file, emu.client_key_file   the x509 client (for the mTLS token listener)
--   emu.wrong_ca_file                           an unrelated CA (for TLS failure tests)
--   emu.dir, emu.pid                            the prefix directory, the nginx master pid
--   emu:service_key("full" | "limited" | "x509" | clientid, { tls = false }) -> key table
--   emu:control(method, path, body_table) -> decoded JSON | nil, err   (path under /_emulator)
--   emu:reset()  emu:stats()  emu:fault{...} -> id  emu:clear_faults()  emu:expire_tokens()
--   emu:set_client(clientid, { secret =, authorities = {...}, expires_in =, name =,
--     scope =, query_filter = "own" | "shared" })
--   emu:set_definition_scope(definitionId, "shared" | scope name)   emu:scopes()
--   emu:set_limits{ service_time =, jitter =, rate =, burst =, count_key =, keep_instances =,
--                   retry_after = }
--     -> the limits in force; set_limits{} removes them; reset() keeps them (they are the
--     tenant's, not its data); emu:limits() reads them. See server/limits.lua: API requests
--     answer after service_time (+ 0..jitter) seconds; beyond rate (a token bucket of burst
--     tokens) 429 with Retry-After; starts whose context has count_key count starts_keyed
--     (first time a value) or starts_doubled; keep_instances = false keeps no instance.
--     stats() also has connections (connections_by_worker: by ngx.worker.id),
--     tls_handshakes, tls_resumed, http2_requests, rate_limited, in_flight, in_flight_max,
--     starts_keyed, starts_doubled, starts_unkeyed (a value not recorded: key_memory is
--     full); reset() zeroes them, but for in_flight and in_flight_max, which start from
--     the requests still in flight
--   emu.spa                                     true in SAP Build Process Automation mode
--   emu:clients()  emu:instances()  emu:log_errors()
--   emu:stop()                                  -> true; waits until the master is gone
--
-- Keep a reference to the emulator while it is used: when it is garbage (or the Lua state
-- closes), __gc stops nginx, so a forgotten emulator does not outlive the tests (Lua 5.2+).
--
-- Workers: the workflow data (instances, tasks, ...) is a Lua table per nginx worker, so with
-- workers > 1 a request may not see what another worker created. Tokens, clients, faults
-- and counters are shared by all workers. Use workers = 1 (the default) for functional tests.
local shell = require "sapwf.emulator.shell"
local certs = require "sapwf.emulator.certs"
local nginx_conf = require "sapwf.emulator.nginx_conf"

local type, pairs, ipairs, tostring, tonumber, error, setmetatable =
  type, pairs, ipairs, tostring, tonumber, error, setmetatable
local format, match = string.format, string.match

local emulator = {}

local Emulator = {}
Emulator.__index = Emulator
for name, method in pairs(require "sapwf.emulator.control") do Emulator[name] = method end
Emulator.service_key = require "sapwf.emulator.service_key"

local MODULES_DIR = "/usr/lib/nginx/modules"
local START_ATTEMPTS = 8
local MAX_INSTANCES = 20000
local KEY_MEMORY = 32        -- megabytes: about 260,000 values of count_key

local OPTIONS = { dir = "string", workers = "number", tls = "boolean", log_level = "string",
  modules_dir = "string", nginx = "string", max_instances = "number", http2 = "boolean",
  spa = "boolean", key_memory = "number" }

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("bad argument #1 to 'start' (table expected, got %s)", type(opts)), 3)
  end
  for key, value in pairs(opts) do
    local expected = OPTIONS[key]
    if not expected then
      error(format("bad option '%s' (unknown option)", tostring(key)), 3)
    end
    if type(value) ~= expected then
      error(format("bad option '%s' (%s expected, got %s)", key, expected, type(value)), 3)
    end
  end
  if opts.workers and (opts.workers < 1 or opts.workers % 1 ~= 0) then
    error("bad option 'workers' (positive integer expected)", 3)
  end
  if opts.max_instances and (opts.max_instances < 0 or opts.max_instances % 1 ~= 0) then
    error("bad option 'max_instances' (non-negative integer expected)", 3)
  end
  if opts.key_memory and not (opts.key_memory >= 1 and opts.key_memory <= 65536) then
    error("bad option 'key_memory' (megabytes from 1 to 65536 expected)", 3)
  end
  if opts.http2 and opts.tls == false then
    error("bad option 'http2' (HTTP/2 is offered on the HTTPS listener: needs tls)", 3)
  end
  return opts
end

-- The lua/ directory this file was loaded from, absolute, so nginx finds the server modules.
local function lua_root()
  local source = debug.getinfo(1, "S").source
  local path = match(source, "^@(.*)$") or error("sapwf.emulator must be loaded from a file")
  local root = match(path, "^(.-)sapwf[/\\]emulator[/\\]init%.lua$")
    or error("cannot find the lua/ directory from " .. path)
  if root == "" then root = "./" end
  if root:sub(1, 1) ~= "/" then root = shell.line("pwd") .. "/" .. root end
  return root
end

local function find_nginx()
  local path = shell.line("command -v nginx 2>/dev/null")
  if path ~= "" then return path end
  for _, candidate in ipairs({ "/usr/sbin/nginx", "/usr/local/sbin/nginx" }) do
    if shell.run("test -x " .. candidate) then return candidate end
  end
  return nil
end

local function remove_dir(self)
  if self.owns_dir then shell.run("rm -rf " .. shell.quote(self.dir)) end
end

local function fail(self, message)
  remove_dir(self)
  return nil, message
end

-- Three different ports; nginx says "Address already in use" if one is taken after all.
local function pick_ports(self)
  self.http_port = shell.random_port()
  repeat self.https_port = shell.random_port()
  until self.https_port ~= self.http_port
  repeat self.mtls_port = shell.random_port()
  until self.mtls_port ~= self.http_port and self.mtls_port ~= self.https_port
end

-- Runs nginx, on other ports while the ones picked are taken. true, or nil and a message.
local function run_nginx(self, nginx, settings)
  local dir = self.dir
  local conf_file, err_file = dir .. "/conf/nginx.conf", dir .. "/logs/start.err"
  local message = ""
  for _ = 1, START_ATTEMPTS do
    pick_ports(self)
    settings.http_port, settings.https_port = self.http_port, self.https_port
    settings.mtls_port = self.mtls_port
    shell.write_file(conf_file, nginx_conf.render(settings))
    -- the master binds the ports before it becomes a daemon: they accept once this returns
    if shell.run(shell.quote(nginx) .. " -p " .. shell.quote(dir) .. " -c "
        .. shell.quote(conf_file) .. " >" .. shell.quote(err_file) .. " 2>&1") then
      -- nginx tries a taken port five times before it gives up; when a later try binds,
      -- the [emerg] lines of the earlier ones are no error of the running server
      local log = dir .. "/logs/error.log"
      local text = shell.read_file(log) or ""
      if text:find("bind() to ", 1, true) then
        shell.write_file(log, (text:gsub("[^\n]*%[emerg%][^\n]*bind%(%) to [^\n]*\n?", "")))
      end
      return true
    end
    message = shell.read_file(err_file) or ""
    if not message:find("Address already in use", 1, true) then break end
    -- The failed attempt's [emerg] lines are not the running server's: log_errors() must
    -- only report what the emulator that did start logged.
    shell.write_file(dir .. "/logs/error.log", "")
  end
  return nil, "nginx did not start: " .. message
end

-- The master writes its pid file once it has become a daemon.
local function wait_for_pid(path)
  for _ = 1, 500 do
    local pid = tonumber(match(shell.read_file(path) or "", "%d+") or "")
    if pid then return pid end
    shell.sleep(0.01)
  end
  return nil
end

--- Starts nginx; returns the emulator, or nil and a message.
function emulator.start(opts)
  opts = check_options(opts)
  local nginx = opts.nginx or find_nginx()
  if not nginx then return nil, "nginx not found (apt-get install nginx libnginx-mod-http-lua)" end
  local modules_dir = opts.modules_dir or MODULES_DIR
  if not shell.read_file(modules_dir .. "/ngx_http_lua_module.so") then
    return nil, "the nginx Lua module is missing: " .. modules_dir
      .. "/ngx_http_lua_module.so (apt-get install libnginx-mod-http-lua)"
  end

  local self = setmetatable({ tls = opts.tls ~= false, spa = opts.spa == true }, Emulator)
  if opts.dir then
    self.dir, self.owns_dir = opts.dir, false
  else
    self.dir, self.owns_dir = shell.line("mktemp -d /tmp/sapwf-emulator.XXXXXX"), true
    if self.dir == "" then return nil, "mktemp failed" end
  end
  local dir = self.dir
  local subdirs = {}
  for i, name in ipairs({ "logs", "conf", "certs", "tmp" }) do
    subdirs[i] = shell.quote(dir .. "/" .. name)
  end
  if not shell.run("mkdir -p " .. table.concat(subdirs, " ")) then
    return fail(self, "cannot create " .. dir)
  end

  local settings = { dir = dir, lua_root = lua_root(), modules_dir = modules_dir,
    as_root = shell.line("id -u") == "0", workers = opts.workers or 1,
    log_level = opts.log_level or "warn", max_instances = opts.max_instances or MAX_INSTANCES,
    http2 = opts.http2 == true, spa = self.spa,
    key_memory = math.floor((opts.key_memory or KEY_MEMORY) * 1024) }
  if self.tls then
    local files, err = certs.make(dir .. "/certs")
    if not files then return fail(self, err) end
    settings.certs = files
    self.ca_file, self.wrong_ca_file = files.ca_file, files.wrong_ca_file
    self.client_cert_file, self.client_key_file = files.client_cert_file, files.client_key_file
  end

  local started, err = run_nginx(self, nginx, settings)
  if not started then return fail(self, err) end
  self.pid = wait_for_pid(dir .. "/logs/nginx.pid")
  if not self.pid then return fail(self, "nginx started but wrote no pid file") end
  self.url = "http://127.0.0.1:" .. self.http_port
  if self.tls then
    self.https_url = "https://127.0.0.1:" .. self.https_port
    self.mtls_url = "https://127.0.0.1:" .. self.mtls_port
  end
  return self
end

--- Stops nginx, waits until its master is gone, removes the directory start() made.
function Emulator:stop()
  if self.stopped then return true end
  self.stopped = true
  if self.pid then
    shell.run("kill -TERM " .. self.pid .. " 2>/dev/null")   -- fast shutdown
    for _ = 1, 500 do
      if not shell.running(self.pid) then break end
      shell.sleep(0.01)
    end
    if shell.running(self.pid) then
      -- its workers first: once the master is gone they would belong to init
      shell.run("pkill -KILL -P " .. self.pid .. " 2>/dev/null")
      shell.run("kill -KILL " .. self.pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not shell.running(self.pid) then break end
        shell.sleep(0.01)
      end
    end
  end
  remove_dir(self)
  return true
end

Emulator.__gc = Emulator.stop
Emulator.__close = Emulator.stop

return emulator
