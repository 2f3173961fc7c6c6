-- Files, processes and randomness for the launcher, with plain Lua 5.1 to 5.4 (os and io).
local type, assert = type, assert
local format, byte, gsub = string.format, string.byte, string.gsub

local shell = {}

--- s as one word for sh.
function shell.quote(s)
  return "'" .. gsub(s, "'", "'\\''") .. "'"
end

--- Whether a shell command succeeded (os.execute answers differently in 5.1 and 5.2+).
function shell.run(command)
  local ok, _, code = os.execute(command)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and (code == nil or code == 0)
end

--- The standard output of a shell command.
function shell.capture(command)
  local pipe = assert(io.popen(command, "r"))
  local output = pipe:read("*a")
  pipe:close()
  return output
end

--- The standard output of a shell command without its trailing white space.
function shell.line(command)
  return (gsub(shell.capture(command), "%s+$", ""))
end

function shell.read_file(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read("*a")
  file:close()
  return text
end

function shell.write_file(path, text)
  local file = assert(io.open(path, "wb"))
  assert(file:write(text))
  file:close()
end

function shell.sleep(seconds)
  shell.run("sleep " .. seconds)
end

function shell.random_bytes(n)
  local file = assert(io.open("/dev/urandom", "rb"))
  local bytes = file:read(n)
  file:close()
  return bytes
end

function shell.random_hex(n)
  return (gsub(shell.random_bytes(n), ".", function(c) return format("%02x", byte(c)) end))
end

--- A random integer in [min, max] (max - min < 65536).
function shell.random_int(min, max)
  local hi, lo = byte(shell.random_bytes(2), 1, 2)
  return min + (hi * 256 + lo) % (max - min + 1)
end

--- A random port to listen on: from 20000 up to the kernel's range of ephemeral ports,
-- which clients' own connections take (thousands of them in a bulk run, some in
-- TIME_WAIT), so a listener rarely finds its port taken; up to 60000 when that range cannot
-- be read or leaves too little room below it.
function shell.random_port()
  local low = tonumber(string.match(shell.read_file("/proc/sys/net/ipv4/ip_local_port_range")
                                    or "", "^%s*(%d+)") or "")
  local max = (low and low - 1 >= 21000) and low - 1 or 60000
  return shell.random_int(20000, max)
end

--- Whether process pid runs; a zombie (dead, not yet reaped by init) does not.
function shell.running(pid)
  local stat = shell.read_file("/proc/" .. pid .. "/stat")
  if stat then return stat:match("^%d+ %b() (%u)") ~= "Z" end
  return shell.run("kill -0 " .. pid .. " 2>/dev/null")   -- no /proc
end

return shell
