-- The side of sapwf.ngx that runs in nginx's worker threads (ngx.run_worker_thread): the
-- blocking libcurl work. Each thread has a Lua state of its own that lives as long as the
-- thread, so the sapwf.core clients made here (and their kept-alive connections and TLS
-- sessions) serve every later call that lands on this thread.
--
-- Everything that comes in and goes out is plain data (strings, numbers, booleans, tables):
-- the options, the token to use and the request; the answer (status, body, headers) or a
-- core error table. The clients never fetch a token by themselves (auto_token = false): the
-- request's Lua state hands in the shared token and renews it, once for all threads.
local core = require "sapwf.core"
local header_text = core.header_text

local thread = {}

-- A client per configuration; more than this (a program making clients with ever new
-- options) closes the oldest.
local MAX_CLIENTS = 8

local clients = {}       -- key -> { client =, secret =, private_key =, headers = }
local order = {}         -- keys, oldest first

local function forget(key)
  local entry = clients[key]
  if not entry then return end
  clients[key] = nil
  for i = 1, #order do
    if order[i] == key then table.remove(order, i) break end
  end
  entry.client:close()
end

-- The values of the headers option as one string (nil: none), to tell a changed API key.
local function header_values(headers)
  if not headers then return nil end
  local names, lines = {}, {}
  for name in pairs(headers) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do lines[i] = name .. ": " .. headers[name] end
  return table.concat(lines, "\n")
end

-- The client for key (which names every option but the secret, the private key and the
-- header values: a rotated secret or API key replaces the client rather than adding one).
local function client_for(key, opts)
  local entry = clients[key]
  local headers = header_values(opts.headers)
  if entry and entry.secret == opts.client_secret and entry.private_key == opts.key
      and entry.headers == headers then
    return entry.client
  end
  forget(key)
  while #order >= MAX_CLIENTS do forget(order[1]) end
  opts.auto_token = false
  local c = core.new(opts)
  clients[key] = { client = c, secret = opts.client_secret, private_key = opts.key,
                   headers = headers }
  order[#order + 1] = key
  return c
end

--- One API exchange with the given token, done by `deadline` (core.monotonic; 0: none):
-- status, body, headers | nil, err. The headers as text: a worker thread hands back
-- strings, not the block userdata (core.header reads either).
function thread.request(key, opts, token, seconds_left, scope, method, path, body, deadline,
                        output)
  local c = client_for(key, opts)
  c:set_token(token, seconds_left, scope)
  local status, resp, headers, gen, used = c:request(method, path, body, deadline, output)
  if status then headers = header_text(headers) end
  return status, resp, headers, gen, used
end

--- Nothing: sapwf_ngx.warm_up runs it so that nginx makes the Lua state and loads this
-- module (and sapwf.core) into it before the first call needs it.
function thread.warm()
  return true
end

--- A new token: token, seconds_left, scope | nil, err.
function thread.token(key, opts)
  return client_for(key, opts):token(true)
end

return thread
