-- `sapwf emulator`: the local emulator in the foreground, with a service key for it, until
-- Ctrl-C or SIGTERM. The emulator is a rock of its own (sapwf-emulator, emulator/ in the
-- checkout); without it this command says how to get it.
--
-- nginx runs as a daemon, so it outlives us unless we stop it. Ctrl-C, SIGTERM and SIGHUP
-- are caught as a flag (core.catch_sigint, as the bulk start does) and we stop it
-- ourselves: the interpreter's own Ctrl-C would raise "interrupted!" anywhere, and a signal
-- delivered twice (timeout(1) sends it to us and to our process group) would raise again
-- inside the stop. For what cannot be caught (SIGKILL, a second signal) a small shell
-- watchdog waits for our process to go and then stops nginx and removes its directory (it
-- does nothing when we already did).
local json = require "sapwf.json"
local core = require "sapwf.core"

local M = {}

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Our own process id: /proc/self is the process that opens it.
local function own_pid()
  local file = io.open("/proc/self/stat", "rb")
  if not file then
    return nil
  end
  local stat = file:read("*a")
  file:close()
  return tonumber(stat:match("^(%d+)"))
end

local function start_watchdog(emu)
  local pid = own_pid()
  if not pid or not emu.pid then
    return false
  end
  local script = string.format("while kill -0 %d 2>/dev/null; do sleep 1; done; "
    .. "if [ -d %s ]; then kill -TERM %d 2>/dev/null; sleep 1; rm -rf %s; fi",
    pid, quote(emu.dir), emu.pid, quote(emu.dir))
  -- Its own session (setsid), so a Ctrl-C meant for us does not end it first.
  local command = "setsid sh -c " .. quote(script) .. " </dev/null >/dev/null 2>&1 &"
  local ok = os.execute(command)
  return ok == true or ok == 0
end

-- The key holds the emulator client's secret, so its file is private from its creation:
-- core.temp_file makes a new file of mode 0600 beside the target whatever the umask, the
-- key goes into it, and a rename puts it in place whole. (io.open creates with the umask's
-- mode, and a chmod after it leaves a window.) Every step is checked. The rename never
-- replaces a file (core.rename_noreplace): the path may name a real service key, the only
-- copy of its secret.
local function taken(path)
  return path .. " exists: sapwf never replaces a file; remove it or give another path"
end

-- The temporary file is removed on every way out but the rename, a raise included (Ctrl-C's
-- "interrupted!" while the key is written): it holds the client's secret. Returns the text
-- written, or nil and why not.
local function write_key(path, key)
  local text = assert(json.encode(key))
  local temp, terr = core.temp_file(path .. ".")
  if not temp then
    return nil, "cannot create a file beside " .. path .. ": " .. terr
  end
  local done, ok, err = pcall(function()
    local file, ferr = io.open(temp, "wb")
    local written
    if file then
      written, ferr = file:write(text, "\n")
      local closed, cerr = file:close()
      if written and not closed then written, ferr = nil, cerr end
    end
    if not written then return nil, ferr end
    local renamed, rerr, was_taken = core.rename_noreplace(temp, path)
    if was_taken then
      return nil, taken(path)
    elseif not renamed then
      return nil, "cannot put the key in place as " .. path .. ": " .. tostring(rerr)
    end
    return text .. "\n"
  end)
  if not (done and ok) then os.remove(temp) end
  if not done then error(ok, 0) end
  return ok, err
end

-- The key names an emulator that is gone once it stops, and a key file left behind made
-- the same command fail the next time (a file that is there is never replaced). So it is
-- removed, but only while it is still the file this run wrote, as it wrote it: one the user
-- replaced or changed meanwhile may be the only copy of something.
local function remove_key(path, written)
  if not written or not written.id or core.file_id(path) ~= written.id then
    return
  end
  local file = io.open(path, "rb")
  local text = file and file:read("*a")
  if file then file:close() end
  if text == written.text then
    os.remove(path)
  end
end

-- Waits for Ctrl-C, SIGTERM or SIGHUP (the flag catch_sigint set up). A `sleep` child keeps
-- us off the CPU; Ctrl-C ends it at once, a signal to us alone is seen within a second.
local function wait_for_signal()
  while not core.sigint_caught() do
    local sleeper = io.popen("sleep 1")
    sleeper:read("*a")
    sleeper:close()
  end
end

-- sapwf.emulator, or nil and the error for a missing one. A module that is there but
-- fails to load is a bug in it and raises.
local function load_emulator()
  local ok, loaded = pcall(require, "sapwf.emulator")
  if ok then return loaded end
  if tostring(loaded):find("module 'sapwf.emulator' not found", 1, true) then
    return nil, { kind = "config", message = "the local emulator is not installed: it is the "
      .. "rock sapwf-emulator (in a checkout: cd emulator && luarocks make --deps-mode=none; "
      .. "or make install-emulator), and it needs nginx, libnginx-mod-http-lua and openssl" }
  end
  error(loaded, 0)
end

function M.run(ctx, args)
  -- A key file that is there is refused before nginx starts; the rename in write_key stays
  -- the guard against one made meanwhile.
  if args.key_file and core.file_id(args.key_file) then
    return nil, { kind = "usage", message = "--key-file: " .. taken(args.key_file) }
  end
  local emulator, missing = load_emulator()
  if not emulator then return nil, missing end
  local tls = args.tls or args.key == "x509"
  core.catch_sigint(true)
  local emu, err = emulator.start({ tls = tls, spa = args.spa or nil })
  if not emu then
    core.catch_sigint(false)
    return nil, { kind = "other", message = "the emulator did not start: " .. tostring(err) }
  end
  local written                 -- {id, text} of the key file this run wrote
  local ok, problem = pcall(function()
    start_watchdog(emu)
    if args.service_time or args.rate then
      emu:set_limits({ service_time = args.service_time, rate = args.rate })
    end
    local key = emu:service_key(args.key, { tls = tls })
    local key_text = args.key_file or "the key above"
    if args.key_file then
      local text, werr = write_key(args.key_file, key)
      if not text then
        error({ kind = "usage", message = "--key-file: " .. tostring(werr) }, 0)
      end
      written = { id = core.file_id(args.key_file), text = text }
    else
      ctx.out:json(key)
    end
    local ca = tls and (" --cafile " .. emu.ca_file) or ""
    local stderr = ctx.out.stderr
    stderr:write(string.format("sapwf: %semulator running at %s (nginx pid %d, in %s)\n",
      args.spa and "SAP Build Process Automation " or "", tls and emu.https_url or emu.url,
      emu.pid, emu.dir))
    stderr:write(string.format("sapwf: the %s client's service key: %s\n", args.key, key_text))
    if args.key_file then
      stderr:write(string.format("  export SAPWF_SERVICE_KEY=%s\n  sapwf%s doctor\n",
        args.key_file, ca))
    else
      stderr:write("  save it to a file (or use --key-file), then: sapwf --service-key FILE"
        .. ca .. " doctor\n")
    end
    stderr:write(string.format("  control API: %s/_emulator/ (stats, faults, limits, reset)\n",
      emu.url))
    if args.service_time or args.rate then
      stderr:write(string.format("  limits: service time %gs, rate %s\n", args.service_time or 0,
        args.rate and string.format("%g/s", args.rate) or "none"))
    end
    stderr:write("sapwf: Ctrl-C stops it\n")
    stderr:flush()
    wait_for_signal()
  end)
  emu:stop()
  core.catch_sigint(false)
  remove_key(args.key_file, written)
  if ok then
    ctx.out.stderr:write("\nsapwf: emulator stopped\n")
    return
  end
  if type(problem) == "string" and problem:find("interrupted!", 1, true) then
    ctx.out.stderr:write("\nsapwf: emulator stopped\n")
    return
  end
  if type(problem) == "table" and problem.kind then
    return nil, problem
  end
  error(problem, 0)
end

return M
