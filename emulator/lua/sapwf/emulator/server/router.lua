-- Matches "METHOD /v1/..." against the operation patterns ("/v1/jobs/{jobId}") with a tree
-- of path segments: literal segments first, then the parameter of that level.
local ngx = ngx
local find, sub, gmatch = string.find, string.sub, string.gmatch
local pairs, ipairs, assert, concat, sort = pairs, ipairs, assert, table.concat, table.sort

local router = {}

local root = { literal = {} }
local exact = {}            -- path without parameters -> method -> route (the fast way)
local NO_PARAMS = {}

local function split(path)
  local segments = {}
  for segment in gmatch(sub(path, 2), "([^/]*)/?") do segments[#segments + 1] = segment end
  -- gmatch yields a last empty match after the final segment
  if segments[#segments] == "" then segments[#segments] = nil end
  return segments
end

--- Adds route (with route.method and route.pattern) to the tree.
function router.add(route)
  local node = root
  for _, segment in ipairs(split(route.pattern)) do
    local name = segment:match("^{(.+)}$")
    if name then
      node.param = node.param or { name = name, node = { literal = {} } }
      assert(node.param.name == name, "two parameter names at one level: " .. route.pattern)
      node = node.param.node
    else
      node.literal[segment] = node.literal[segment] or { literal = {} }
      node = node.literal[segment]
    end
  end
  node.methods = node.methods or {}
  node.methods[route.method] = route
  if not find(route.pattern, "{", 1, true) then
    local path = route.pattern
    if #path > 1 and sub(path, -1) == "/" then path = sub(path, 1, -2) end
    exact[path] = exact[path] or {}
    exact[path][route.method] = route
  end
end

local function walk(node, segments, i, params)
  if i > #segments then return node.methods and node end
  local segment = segments[i]
  local child = node.literal[segment]
  if child then
    local found = walk(child, segments, i + 1, params)
    if found then return found end
  end
  if node.param and segment ~= "" then
    local found = walk(node.param.node, segments, i + 1, params)
    if found then
      if find(segment, "%", 1, true) then segment = ngx.unescape_uri(segment) end
      params[node.param.name] = segment
      return found
    end
  end
  return nil
end

--- route, params for a raw path ("/v1/..."; one trailing "/" is ignored), or nil plus the
-- allowed methods ("GET, PATCH") when the path exists with other methods.
function router.match(method, path)
  if #path > 1 and sub(path, -1) == "/" then path = sub(path, 1, -2) end
  local routes = exact[path]
  if routes and routes[method] then return routes[method], NO_PARAMS end
  local params = {}
  local node = walk(root, split(path), 1, params)
  if not node then return nil end
  local route = node.methods[method]
  if route then return route, params end
  local allowed = {}
  for name in pairs(node.methods) do allowed[#allowed + 1] = name end
  sort(allowed)
  return nil, nil, concat(allowed, ", ")
end

return router
