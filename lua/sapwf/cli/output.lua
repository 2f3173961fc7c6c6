-- How results reach the user: JSON on stdout (one document, for jq and scripts) or an aligned
-- table for people at a terminal. Messages, progress and errors go to stderr, so stdout stays
-- parseable whatever happens.
local json = require "sapwf.json"

local M = {}

local Output = {}
Output.__index = Output

-- fn, kept out of LuaJIT's compiler: for the functions whose checked writes must never
-- fail silently. Compiled, LuaJIT 2.1 (OpenResty's, Debian's luajit2) loses the error of a
-- file:flush() or file:write() that failed: the compiled call checks the result, its
-- failure sends execution back to the interpreter, and the interpreter makes the call once
-- more, on a buffer the failed call emptied, and it succeeds. Seen with a file size
-- limit: the bulk start's record file was cut and every write and flush returned true.
function M.interpreted(fn)
  if jit then jit.off(fn) end
  return fn
end

-- True when file descriptor `fd` is a terminal. Lua has no isatty; `test -t` asks the shell,
-- which inherits our descriptors.
function M.is_terminal(fd)
  local ok = os.execute("test -t " .. tostring(fd))
  return ok == true or ok == 0
end

-- The terminal's width in columns: $COLUMNS, else what `stty size` says of the terminal on
-- stdin (the shell does not export COLUMNS), else 80.
function M.terminal_width()
  local columns = tonumber(os.getenv("COLUMNS") or "")
  if not columns then
    local pipe = io.popen("stty size 2>/dev/null")
    if pipe then
      columns = tonumber((pipe:read("*l") or ""):match("^%d+ (%d+)$"))
      pipe:close()
    end
  end
  if not columns or columns < 20 then columns = 80 end
  return columns
end

-- `format`: "json", "ndjson" (one JSON document per line: a list's items, one by one),
-- "table" or nil (table when stdout is a terminal, else json).
function M.new(format, stdout, stderr)
  local self = setmetatable({}, Output)
  self.stdout = stdout or io.stdout
  self.stderr = stderr or io.stderr
  self.format = format or (M.is_terminal(1) and "table" or "json")
  return self
end

-- One line for an error object: the module's errors have a __tostring (one line, no secret);
-- the CLI's own are plain tables with a message.
function M.describe_error(err)
  if type(err) ~= "table" then
    return tostring(err)
  end
  local mt = getmetatable(err)
  if mt and mt.__tostring then
    return tostring(err)
  end
  return tostring(err.message or err.kind or "error")
end

-- A description without the "sapwf: " the module's messages start with: for a line the
-- command line prefixes itself (out:message) or a field of a JSON report.
function M.bare(text)
  return (text:gsub("^sapwf: ", ""))
end

-- Standard output may be a full disk, a closed pipe or /dev/full: a result that did not
-- get out is a failure, never a silent success. These raise an `io` error object, which
-- the command line reports (cli/init.lua) with a non-zero exit.
local function stdout_failed(err)
  error({ kind = "io", message = "cannot write to standard output: " .. tostring(err) }, 0)
end

Output.emit = M.interpreted(function(self, ...)
  local ok, err = self.stdout:write(...)
  if not ok then stdout_failed(err) end
end)

Output.flush = M.interpreted(function(self)
  local ok, err = self.stdout:flush()
  if not ok then stdout_failed(err) end
end)

function Output:message(fmt, ...)
  self.stderr:write("sapwf: ", string.format(fmt, ...), "\n")
  self.stderr:flush()
end

-- s with each byte that starts no valid UTF-8 character replaced by U+FFFD (as utf8.len
-- judges, the same test as sapwf.json's).
local REPLACEMENT = "\239\191\189"
local function valid_utf8(s)
  local out, pos = {}, 1
  while true do
    local n, bad = utf8.len(s, pos)
    if n then
      out[#out + 1] = s:sub(pos)
      return table.concat(out)
    end
    out[#out + 1] = s:sub(pos, bad - 1) .. REPLACEMENT
    pos = bad + 1
  end
end

-- A copy of a decoded answer whose strings (keys too) are all valid UTF-8.
local function with_valid_utf8(value)
  if type(value) == "string" then
    return utf8.len(value) and value or valid_utf8(value)
  elseif type(value) ~= "table" then
    return value
  end
  local copy = {}
  for k, v in pairs(value) do copy[with_valid_utf8(k)] = with_valid_utf8(v) end
  return setmetatable(copy, getmetatable(value))
end

-- Writes `value` as JSON whatever the chosen format (for results that are configuration to
-- paste elsewhere, like `authorities`). An answer holding text that is not UTF-8 (written
-- by another client: sapwf on Lua 5.3+ sends none) is shown, not refused: JSON must be
-- UTF-8, so each bad byte becomes U+FFFD, as jq shows it, and stderr says so once.
function Output:json(value)
  local text, err = json.encode(value)
  if not text and utf8 and tostring(err):find("not valid UTF-8", 1, true) then
    text, err = json.encode(with_valid_utf8(value))
    if text and not self.said_utf8 then
      self.said_utf8 = true
      self:message("the answer holds text that is not valid UTF-8: each byte that starts no "
        .. "character is written as U+FFFD")
    end
  end
  if not text then
    error("cannot write the result as JSON: " .. tostring(err), 0)
  end
  self:emit(text, "\n")
  self:flush()
end

local function cell_text(value)
  if value == nil or value == json.null then
    return ""
  end
  local kind = type(value)
  if kind == "table" then
    return json.encode(value) or "?"
  elseif kind == "number" and value == math.floor(value) and math.abs(value) < 2 ^ 53 then
    -- a whole number without ".0" (Debian's cjson decodes every number as a float)
    return string.format("%d", value)
  end
  -- Control characters would break the alignment (and could move the cursor).
  return (tostring(value):gsub("%c", " "))
end

-- Characters, not bytes, in UTF-8 text: the bytes that do not continue a character (Lua
-- 5.1 and LuaJIT have no utf8 library).
local function width(text)
  return select(2, text:gsub("[^\128-\191]", ""))
end

local function shorten(text, max)
  if width(text) <= max then
    return text
  end
  -- cut before the max-th character (where its first byte is), leaving room for "…"
  local count = 0
  for pos in text:gmatch("()[^\128-\191]") do
    count = count + 1
    if count == max then
      return text:sub(1, pos - 1) .. "…"
    end
  end
  return text
end

-- The headers, shortened to their columns' widths.
local function unpack_columns(columns, widths)
  local out = {}
  for i, name in ipairs(columns) do out[i] = shorten(name, widths[i]) end
  return (table.unpack or unpack)(out)
end

local function pad(text, size)
  return text .. string.rep(" ", size - width(text))
end

local function is_list(value)
  if type(value) ~= "table" then
    return false
  end
  local count = 0
  for _ in pairs(value) do
    count = count + 1
  end
  return count == #value
end

-- The columns to show for a list: the view's, or the scalar fields of the items in the order
-- the keys sort (cjson keeps no order).
local function columns_for(list, view)
  if view and view.columns then
    return view.columns
  end
  local seen, names = {}, {}
  for _, item in ipairs(list) do
    if type(item) == "table" then
      for key, value in pairs(item) do
        if not seen[key] and type(value) ~= "table" then
          seen[key] = true
          names[#names + 1] = key
        end
      end
    end
  end
  table.sort(names, function(a, b)
    if a == "id" or b == "id" then
      return a == "id" and b ~= "id"
    end
    return a < b
  end)
  return names
end

function Output:_list_table(list, view)
  if #list == 0 then
    self.stderr:write("(no items)\n")
    return
  end
  if type(list[1]) ~= "table" then
    for _, value in ipairs(list) do
      self:emit(cell_text(value), "\n")
    end
    return
  end
  local columns = columns_for(list, view)
  local max_cell = (view and view.max_cell) or 48
  local rows, widths = {}, {}
  for i, name in ipairs(columns) do
    widths[i] = width(name)
  end
  for r, item in ipairs(list) do
    local row = {}
    -- An item that is not an object (the service's data, not ours: [{..}, 5]) is shown in
    -- the first column; indexing it would raise and lose the whole output.
    local object = type(item) == "table"
    for i, name in ipairs(columns) do
      local value
      if object then value = item[name] elseif i == 1 then value = item end
      local text = shorten(cell_text(value), max_cell)
      row[i] = text
      widths[i] = math.max(widths[i], width(text))
    end
    rows[r] = row
  end
  -- Fit the terminal: narrow the widest column, one character at a time, down to 6.
  local room = (self.width or M.terminal_width()) - 2 * (#columns - 1)
  local total = 0
  for _, w in ipairs(widths) do total = total + w end
  while total > room do
    local widest = 1
    for i = 2, #widths do if widths[i] > widths[widest] then widest = i end end
    if widths[widest] <= 6 then break end
    widths[widest] = widths[widest] - 1
    total = total - 1
  end
  for _, row in ipairs(rows) do
    for i, text in ipairs(row) do row[i] = shorten(text, widths[i]) end
  end
  columns = { unpack_columns(columns, widths) }
  local function write_row(row)
    local parts = {}
    for i, text in ipairs(row) do
      parts[i] = i < #row and pad(text, widths[i]) or text
    end
    self:emit(table.concat(parts, "  "), "\n")
  end
  write_row(columns)
  for _, row in ipairs(rows) do
    write_row(row)
  end
end

function Output:_object_table(object, view)
  local rank = {}
  for i, key in ipairs(view.order or { "id" }) do
    rank[key] = i
  end
  local keys = {}
  for key in pairs(object) do
    keys[#keys + 1] = tostring(key)
  end
  table.sort(keys, function(a, b)
    if rank[a] or rank[b] then
      return (rank[a] or math.huge) < (rank[b] or math.huge)
    end
    return a < b
  end)
  local key_width = 0
  for _, key in ipairs(keys) do
    key_width = math.max(key_width, width(key))
  end
  for _, key in ipairs(keys) do
    local value = object[key]
    if value == nil then
      value = object[tonumber(key)]
    end
    if is_list(value) and next(value) ~= nil and type(value[1]) ~= "table" then
      -- A list of names (scopes, authorities): one per line reads better than JSON.
      for i, item in ipairs(value) do
        self:emit(pad(i == 1 and key or "", key_width), "  ", cell_text(item), "\n")
      end
    else
      self:emit(pad(key, key_width), "  ", cell_text(value), "\n")
    end
  end
end

-- The result of a command. `view.list` says the value is a JSON array (an empty Lua table
-- would otherwise be written as {}); `view.columns` picks the table columns of a list,
-- `view.order` the fields that come first in an object's table (default: id).
function Output:result(value, view)
  view = view or {}
  if view.list and type(value) == "table" and getmetatable(value) == nil then
    value = json.array(value)
  end
  if self.format == "ndjson" and view.list and type(value) == "table" then
    for _, item in ipairs(value) do self:json(item) end     -- one line each
  elseif self.format == "json" or self.format == "ndjson" then
    self:json(value)
  elseif type(value) ~= "table" then
    self:emit(cell_text(value), "\n")
  elseif view.list or (is_list(value) and next(value) ~= nil) then
    self:_list_table(value, view)
  else
    self:_object_table(value, view)
  end
  self:flush()
end

return M
