-- What the sections of `make bench` share (bench/run.lua loads this and hands it to
-- bench/latency.lua, ratelimit.lua, memory.lua and callgrind.lua): running a row under GNU
-- time with an environment file, several at once, reading their one-line reports, an
-- emulator's technical client, and the figures' formatting.
local lib = {}

local format, concat = string.format, table.concat

---------------------------------------------------------------------------------------------
-- Figures

function lib.thousands(n)
  local s = format("%d", math.floor(n + 0.5))
  local sign, digits = s:match("^(-?)(%d+)$")
  local out = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return sign .. (out:gsub("^,", ""))
end

function lib.mib(kb)
  return format("%.1f MiB", kb / 1024)
end

function lib.pct(x)
  return format("%.1f%%", x * 100)
end

function lib.median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n == 0 then return nil end
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

function lib.check(holds) return holds and "holds" or "**does not hold**" end

-- A Markdown table from a header (list of cells, a cell starting with ">" right-aligned)
-- and rows (lists of cells).
function lib.table(header, rows)
  local head, rule = {}, {}
  for i, h in ipairs(header) do
    local right = h:sub(1, 1) == ">"
    head[i] = right and h:sub(2) or h
    rule[i] = right and "---:" or "---"
  end
  local lines = { "| " .. concat(head, " | ") .. " |", "|" .. concat(rule, "|") .. "|" }
  for _, row in ipairs(rows) do lines[#lines + 1] = "| " .. concat(row, " | ") .. " |" end
  return concat(lines, "\n")
end

-- The numbers a row's report line names: "starts 12 seconds 1.5 ..." -> {starts = 12, ...}.
function lib.parse(output)
  local t = {}
  for line in output:gmatch("[^\n]+") do
    for k, v in line:gmatch("([%a][%w_]*) (%-?[%d.]+)") do
      if t[k] == nil then t[k] = tonumber(v) end
    end
  end
  return t
end

---------------------------------------------------------------------------------------------
-- Processes

-- ctx: what run.lua hands over (shell, tmp, gnu_time, pin, fail).
function lib.new(ctx)
  local shell, quote = ctx.shell, ctx.shell.quote
  local self = { ctx = ctx }
  local serial = 0

  -- A fresh path in the run's temporary directory.
  function self.path(name)
    serial = serial + 1
    return format("%s/%s-%d", ctx.tmp, name, serial)
  end

  -- An environment file of `export NAME=value` lines (vars: list of {name, value}), made
  -- readable by this user only before anything goes in: secrets and tokens reach the rows
  -- through it, never on a command line.
  function self.env_file(vars, from)
    local path = self.path("env")
    shell.run("umask 077; : > " .. quote(path))
    local lines = {}
    if from then lines[1] = ". " .. quote(from) end
    for _, v in ipairs(vars) do lines[#lines + 1] = "export " .. v[1] .. "=" .. quote(v[2]) end
    shell.write_file(path, concat(lines, "\n") .. "\n")
    return path
  end

  -- The shell words that run command under GNU time, output to out, its peak RSS and CPU
  -- time to time_file.
  local function timed(env, command, out, time_file, pin)
    return quote(". " .. quote(env) .. " && exec " .. (pin and ctx.pin or "") .. ctx.gnu_time
      .. " -f '%M %U %S' -o " .. quote(time_file) .. " " .. command) .. " >" .. quote(out)
      .. " 2>&1"
  end

  local function collect(command, out, time_file, ok)
    local output = shell.read_file(out) or ""
    local rss, user, sys = (shell.read_file(time_file) or ""):match(
      "(%d+) ([%d.]+) ([%d.]+)%s*$")
    local failed = (shell.read_file(time_file) or ""):match("exited with non%-zero status")
    if not ok or failed or not rss then
      ctx.fail("a row failed: " .. command .. "\n" .. output)
    end
    return { output = output, rss = tonumber(rss), cpu = tonumber(user) + tonumber(sys),
             report = lib.parse(output) }
  end

  -- Runs command with the environment file under GNU time: {output, rss (kB), cpu
  -- (seconds, user + system, with its children), report (lib.parse)}.
  function self.measured(env, command)
    local out, time_file = self.path("out"), self.path("time")
    local ok = shell.run("bash -c " .. timed(env, command, out, time_file, true))
    return collect(command, out, time_file, ok)
  end

  -- Runs the commands at once, each under GNU time; a list of what measured returns.
  function self.parallel(env, commands)
    local parts, files = {}, {}
    for k, command in ipairs(commands) do
      files[k] = { self.path("out"), self.path("time") }
      parts[k] = "bash -c " .. timed(env, command, files[k][1], files[k][2], true) .. " &"
    end
    local ok = shell.run("bash -c " .. quote(concat(parts, " ") .. " wait"))
    local results = {}
    for k, command in ipairs(commands) do
      results[k] = collect(command, files[k][1], files[k][2], ok)
    end
    return results
  end

  -- The benchmark's technical client on another emulator (the same id and authority as on
  -- the main one, a secret of its own), or (client: {id =, authorities =}) another client,
  -- its token fetched with curl, and an environment file for the rows: the same variables
  -- as run.lua's, plus SAPWF_BENCH_CA_FILE and NODE_EXTRA_CA_CERTS for an https emulator.
  -- Returns env_file, key, the token's length.
  function self.client_env(emu, tls, client)
    local id = client and client.id or ctx.client_id
    local secret = shell.random_hex(24)
    emu:set_client(id, { secret = secret, authorities = client and client.authorities
                                          or { "WORKFLOW_INSTANCE_START" } })
    local key = emu:service_key(id, { tls = tls })
    local token_url = key.uaa.url .. "/oauth/token"
    local auth = self.env_file({})          -- an empty file made private, then the secret
    shell.write_file(auth, format('user = "%s:%s"\n', id, secret))
    local answer = shell.capture("curl -sS -K " .. quote(auth)
      .. (tls and " --cacert " .. quote(emu.ca_file) or "")
      .. " -d grant_type=client_credentials " .. quote(token_url))
    local ok, decoded = pcall(ctx.cjson.decode, answer or "")
    local token = ok and type(decoded) == "table" and decoded.access_token
    if type(token) ~= "string" then ctx.fail("no token from the emulator at " .. token_url) end
    local vars = {
      { "SAPWF_BENCH_TOKEN", token },
      { "SAPWF_BENCH_USER_AGENT", ctx.user_agent },
      { "SAPWF_BENCH_KEY", ctx.cjson.encode(key) },
      { "SAPWF_BENCH_API_URL", key.endpoints.workflow_rest_url },
      { "SAPWF_BENCH_TOKEN_URL", token_url },
      { "SAPWF_BENCH_CLIENT_ID", id },
      { "SAPWF_BENCH_CLIENT_SECRET", secret },
      { "LUA_PATH", package.path },
      { "LUA_CPATH", package.cpath },
    }
    if tls then
      vars[#vars + 1] = { "SAPWF_BENCH_CA_FILE", emu.ca_file }
      vars[#vars + 1] = { "NODE_EXTRA_CA_CERTS", emu.ca_file }
    end
    return self.env_file(vars), key, #token
  end

  -- The emulator's counters now minus those of `before` (both from emu:stats()).
  function self.delta(after, before)
    local d = {}
    for k, v in pairs(after) do
      if type(v) == "number" and type(before[k]) == "number" then d[k] = v - before[k] end
    end
    return d
  end

  return self
end

return lib
