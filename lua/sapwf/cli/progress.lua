-- A one-line progress bar on stderr for long runs (start --from): count, rate and ETA.
-- Only drawn when stderr is a terminal; otherwise it stays silent, so logs get the summary only.

local M = {}

-- Seconds with sub-second resolution from luasystem's monotonic clock or LuaSocket when one
-- is installed (busted needs both); whole seconds from os.time otherwise, which is enough
-- for a rate over a long run.
local has_system, system = pcall(require, "system")
local has_socket, socket = pcall(require, "socket")
if has_system and type(system) == "table" and system.monotime then
  M.now = system.monotime
elseif has_socket and type(socket) == "table" and socket.gettime then
  M.now = socket.gettime
else
  M.now = os.time
end

local Progress = {}
Progress.__index = Progress

local BAR_WIDTH = 24
local REDRAW_SECONDS = 0.1

-- opts: total (number or nil when unknown), stream (default io.stderr), enabled (boolean).
function M.new(opts)
  local self = setmetatable({}, Progress)
  self.total = opts.total
  self.stream = opts.stream or io.stderr
  self.enabled = opts.enabled
  self.started_at = M.now()
  self.drawn_at = nil
  return self
end

local function clock(seconds)
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then
    return string.format("%d:%02d:%02d", math.floor(seconds / 3600),
      math.floor(seconds % 3600 / 60), seconds % 60)
  end
  return string.format("%d:%02d", math.floor(seconds / 60), seconds % 60)
end

-- The line for `done` lines handled (of which `failed` failed), without drawing it.
function Progress:line(done, failed, elapsed)
  local parts = {}
  local total = self.total
  if total and total > 0 then
    local filled = math.floor(BAR_WIDTH * math.min(done, total) / total)
    parts[#parts + 1] = string.format("%d/%d [%s%s] %3d%%", done, total, string.rep("#", filled),
      string.rep("-", BAR_WIDTH - filled), math.floor(100 * done / total))
  else
    parts[#parts + 1] = string.format("%d", done)
  end
  local rate = elapsed > 0 and done / elapsed or nil
  if rate then
    parts[#parts + 1] = string.format("%.1f/s", rate)
  end
  if rate and rate > 0 and total and total > done then
    parts[#parts + 1] = "ETA " .. clock((total - done) / rate)
  end
  if failed and failed > 0 then
    parts[#parts + 1] = string.format("%d failed", failed)
  end
  return table.concat(parts, "  ")
end

function Progress:update(done, failed)
  if not self.enabled then
    return
  end
  local now = M.now()
  local finished = self.total and done >= self.total
  if self.drawn_at and now - self.drawn_at < REDRAW_SECONDS and not finished then
    return
  end
  self.drawn_at = now
  -- \r back to the start, \27[K clears what a longer previous line left behind.
  self.stream:write("\r", self:line(done, failed, now - self.started_at), "\27[K")
  self.stream:flush()
end

-- Ends the bar's line so that later messages start on a fresh one.
function Progress:finish()
  if self.enabled and self.drawn_at then
    self.stream:write("\n")
    self.stream:flush()
  end
end

function Progress:elapsed()
  return M.now() - self.started_at
end

return M
