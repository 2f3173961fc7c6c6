-- JSON given on the command line: `--context '{"a":1}'`, `--context @file.json` or
-- `--context -` (standard input). Problems here are the user's to fix, so they are usage
-- errors (exit 2) that name the option.
local json = require "sapwf.json"

local M = {}

local function usage_error(message)
  return nil, { kind = "usage", message = message }
end

local function read_file(path)
  local file, open_err = io.open(path, "rb")
  if not file then
    return nil, open_err
  end
  local text, read_err = file:read("*a")
  file:close()
  return text, read_err
end

-- A file's text without the UTF-8 byte order mark editors on Windows put at its start:
-- JSON has none (service keys drop it too: servicekey.lua). The bulk start's input too.
local function without_bom(text)
  if text:sub(1, 3) == "\239\187\191" then
    return text:sub(4)
  end
  return text
end
M.without_bom = without_bom

-- The reason in io.open's message, which starts with the path: the command line's
-- messages name the file themselves. A read's message ("Is a directory") is kept whole.
function M.system_reason(err, path)
  local reason = tostring(err)
  if reason:sub(1, #path + 2) == path .. ": " then
    reason = reason:sub(#path + 3)
  end
  return reason
end

-- The text that `spec` stands for, and where it came from (for messages that already start
-- with the option's name, so JSON given inline is "the value", not the option again).
function M.text(spec, option)
  if spec == "-" then
    return without_bom(io.stdin:read("*a") or ""), "standard input"
  elseif spec:sub(1, 1) == "@" then
    local path = spec:sub(2)
    local text, err = read_file(path)
    if not text then
      return usage_error(string.format("%s: cannot read %s: %s", option, path,
                                       M.system_reason(err, path)))
    end
    return without_bom(text), path
  end
  return spec, "the value"
end

-- Whether a decoded JSON value is an object (a table that is not an array). An empty
-- one decodes to a table without the array metatable.
function M.is_object(value)
  return type(value) == "table" and #value == 0 and getmetatable(value) ~= json.array_mt
end

-- Why a decoded value cannot be sent as JSON, or nil: JSON text can hold what encodes to
-- no JSON (1e400 decodes to infinity; on Lua 5.3+ sapwf refuses strings that are not
-- UTF-8), and the start would fail only once sent for, looking like the service's refusal.
-- name names the value in the message (e.g. "context.price: infinity is not JSON").
function M.not_sendable(value, name)
  local text, err = json.encode(value, name)
  if text then return nil end
  return tostring(err)
end

-- Decodes `spec` (JSON, @file or -) into a JSON object (a Lua table that is not an array).
-- A missing spec gives an empty object.
function M.object(spec, option)
  if spec == nil then
    return {}
  end
  local text, origin = M.text(spec, option)
  if not text then
    return nil, origin
  end
  local value, err = json.decode(text)
  if value == nil then
    return usage_error(string.format("%s: %s is not valid JSON: %s", option, origin,
      tostring(err)))
  end
  if not M.is_object(value) then
    return usage_error(string.format("%s: %s must be a JSON object", option, origin))
  end
  local why = M.not_sendable(value, (option:gsub("^%-%-", "")))
  if why then
    return usage_error(string.format("%s: %s cannot be sent: %s", option, origin, why))
  end
  return value
end

return M
