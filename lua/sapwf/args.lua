-- Argument checks that more than one layer raises with: base.lua's (the methods' own
-- arguments) and query.lua's (the values of a query) share them, so a list is refused in
-- the same words wherever it is taken. Not API.
local type, tostring, next, error = type, tostring, next, error
local format = string.format

local args = {}

-- Raises unless t (a table) is an array: its keys exactly 1..#t. Whatever reads a list
-- stops at # or ipairs, so a set ({[id] = true}), an array with other keys beside its items
-- ({a, second = b}) or one with holes would be read as fewer items than the caller meant,
-- and the rest dropped without a word. One pass with next, whatever the length (a bulk
-- start checks its items with it). what: how the message names t ("viewerUsers", "query
-- 'status'"), nil for the argument itself. level: as error's, counted from the function
-- that calls this one (2: its caller). Returns #t.
function args.check_array(fname, argn, t, what, level)
  local n, count = #t, 0
  for k in next, t do
    count = count + 1
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      error(format("bad argument #%d to '%s' (%san array expected, got a table with key %s)",
                   argn, fname, what and what .. ": " or "",
                   type(k) == "string" and "'" .. k .. "'" or tostring(k)), level + 1)
    end
  end
  if count ~= n then
    error(format("bad argument #%d to '%s' (%san array expected, got one with holes)", argn,
                 fname, what and what .. ": " or ""), level + 1)
  end
  return n
end

return args
