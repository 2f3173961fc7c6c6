-- run-emulator.lua: the local emulator (XSUAA + SAP Workflow API v1) in the foreground, to
-- try the library or the sapwf command line by hand. Prints a service key for it as JSON on
-- stdout and its ports on stderr; Ctrl-C or SIGTERM stops it.
--
--   lua5.4 examples/run-emulator.lua > key.json
--   lua5.4 examples/run-emulator.lua --client limited --tls --workers 2
local here = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. here
  .. "/../emulator/lua/?.lua;" .. here .. "/../emulator/lua/?/init.lua;" .. package.path

local argparse = require "argparse"
local cjson = require "cjson"
local emulator = require "sapwf.emulator"

local parser = argparse("run-emulator.lua",
  "Runs the local emulator until Ctrl-C or SIGTERM; prints a service key for it.")
parser:option("--client", "Whose key to print: full, limited, x509 or a client id.", "full")
parser:flag("--tls", "Put the https URLs in the key (the x509 key always has certurl).")
parser:option("--workers", "nginx worker processes (each has its own workflow data).", "1")
  :convert(tonumber)
parser:option("--max-instances", "Instances kept per worker; the oldest go (0: all).")
  :convert(tonumber)
local args = parser:parse()

local emu, err = emulator.start{ workers = args.workers, max_instances = args.max_instances }
if not emu then
  io.stderr:write("run-emulator: ", err, "\n")
  os.exit(1)
end

-- Plain Lua cannot catch SIGTERM, and dies of it without stopping nginx. A watchdog in a
-- session of its own stops nginx (and removes its directory) once this process is gone.
local WATCHDOG = [[
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
if grep -q "$3" "/proc/$2/cmdline" 2>/dev/null; then kill -TERM "$2"; fi
while grep -q "$3" "/proc/$2/cmdline" 2>/dev/null; do sleep 0.1; done
rm -rf "$3"
]]

local function own_pid()
  local pipe = assert(io.popen("echo $PPID"))    -- the shell's parent: this process
  local pid = pipe:read("*l")
  pipe:close()
  return pid
end

local watchdog = emu.dir .. "/watchdog.sh"
local file = assert(io.open(watchdog, "w"))
file:write(WATCHDOG)
file:close()
os.execute(string.format("setsid sh '%s' %s %d '%s' >/dev/null 2>&1 &", watchdog, own_pid(),
  emu.pid, emu.dir))

local ok, key = pcall(emu.service_key, emu, args.client, { tls = args.tls })
if not ok then
  emu:stop()
  io.stderr:write("run-emulator: ", tostring(key), "\n")
  os.exit(1)
end
io.stdout:write(cjson.encode(key), "\n")
io.stdout:flush()
io.stderr:write(string.format("sapwf emulator: http %s", emu.url))
if emu.https_url then
  io.stderr:write(string.format(", https %s, mtls (token only) %s, CA %s", emu.https_url,
    emu.mtls_url, emu.ca_file))
end
io.stderr:write(string.format("\nnginx %d in %s; Ctrl-C stops it\n", emu.pid, emu.dir))

-- os.execute returns when `sleep` dies of Ctrl-C (the shell's caller ignores SIGINT while
-- it waits); a Ctrl-C between two sleeps raises "interrupted!" in Lua instead: pcall.
local function wait_for_interrupt()
  while true do
    local status = os.execute("sleep 1")
    if status ~= true and status ~= 0 then return end
  end
end
pcall(wait_for_interrupt)
emu:stop()
io.stderr:write("sapwf emulator stopped\n")
