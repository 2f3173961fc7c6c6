-- The options of sapwf.new (and sapwf_ngx.new, which adds its own): their names, types and
-- ranges, and what sapwf.core.new takes for them: the credentials from the service key or
-- given, http:// refused beyond loopback unless allowed. Not API: the README and sapwf.new's
-- reference list the options.
local errors = require "sapwf.errors"
local servicekey = require "sapwf.servicekey"
local service = require "sapwf.service"

local type, pairs, ipairs, tostring, error, tonumber = type, pairs, ipairs, tostring, error,
  tonumber
local format, gsub, find, match, lower = string.format, string.gsub, string.find, string.match,
  string.lower

local options = {}

-- Option name -> accepted Lua types. Credentials come from service_key or explicitly;
-- explicit ones win, so a key can be pointed at another api_url.
local OPTION_TYPES = {
  service_key = "string|table", instance = "string",
  api_url = "string", token_url = "string", client_id = "string", client_secret = "string",
  cert = "string", key = "string",
  timeout = "number", connect_timeout = "number", cafile = "string", verify = "boolean",
  proxy = "string", token_margin = "number", max_response = "number", user_agent = "string",
  retries = "number", retry_deadline = "number", backoff_base = "number",
  backoff_max = "number", log = "function", allow_http = "boolean", headers = "table",
  service = "string",
}
-- The retry options' ranges (send.lua applies them): name -> max, integer?
local RETRY_RANGES = { retries = { 100, true }, retry_deadline = { 86400 },
                       backoff_base = { 3600 }, backoff_max = { 3600 } }
local CREDENTIALS = { "api_url", "token_url", "client_id", "client_secret", "cert", "key" }
-- Credentials raise when empty (or only white space): given, they replace the key's, so an
-- empty one (an unset variable in a template) would hide a good key behind an error that
-- blames it ("no api_url: give service_key, ...").
-- So do a service key path, the instance's name and the User-Agent, which an empty value
-- would only garble (a key file "" that cannot be opened, a hint naming no instance).
local NON_EMPTY = { service_key = true, instance = true, user_agent = true }
for _, name in ipairs(CREDENTIALS) do NON_EMPTY[name] = true end
local PASSED_ON = { "timeout", "connect_timeout", "cafile", "verify", "proxy", "token_margin",
                    "max_response", "user_agent", "headers" }

-- Raises for unknown names and types, at the caller of the function that calls this one
-- (level 3 from here, the default: the caller of sapwf.new, sapwf.from_env or
-- sapwf_ngx.new).
function options.check(opts, fname, level)
  level = level or 3
  if type(opts) ~= "table" then
    error(format("bad argument #1 to '%s' (table expected, got %s)", fname, type(opts)), level)
  end
  for name, value in pairs(opts) do
    local want = OPTION_TYPES[name]
    if not want then
      error(format("bad option '%s' (unknown option)", tostring(name)), level)
    end
    local got = type(value)
    if got ~= want and not (want == "string|table" and (got == "string" or got == "table")) then
      error(format("bad option '%s' (%s expected, got %s)", name,
                   want == "string|table" and "string or table" or want, got), level)
    end
    if NON_EMPTY[name] and got == "string" and not find(value, "%S") then
      error(format("bad option '%s' (non-empty string expected)", name), level)
    end
    if name == "service" and not service.KINDS[value] then
      error(format("bad option 'service' (\"%s\" or \"%s\" expected)", service.WORKFLOW,
                   service.SPA), level)
    end
    local range = RETRY_RANGES[name]
    if range and not (value >= 0 and value <= range[1] and (not range[2] or value % 1 == 0)) then
      error(format("bad option '%s' (%s from 0 to %d expected)", name,
                   range[2] and "integer" or "number", range[1]), level)
    end
  end
end

-- Whether an http:// URL stays on this machine: localhost, 127.0.0.0/8 or [::1] (the
-- emulator). Anything else, or anything unclear (user info before the host, a trailing dot,
-- an odd form of an address), counts as the network.
local function is_loopback(authority)
  if find(authority, "@", 1, true) then return false end
  local host = match(authority, "^(%[[^%]]*%])") or match(authority, "^([^:]*)")
  host = lower(host)
  if host == "localhost" or host == "[::1]" then return true end
  local a, b, c, d = match(host, "^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  return a ~= nil and tonumber(a) == 127 and tonumber(b) <= 255 and tonumber(c) <= 255
    and tonumber(d) <= 255
end

-- The host of an http:// URL that leaves this machine (a secret or token sent to it travels
-- in clear text), or nil for https:// and loopback.
local function cleartext_host(url)
  local scheme, authority = match(url, "^(%a[%w+.-]*)://([^/?#]*)")
  if lower(scheme) ~= "http" or is_loopback(authority) then return nil end
  -- user info may hold a password: name the host part only
  return (gsub(authority, "^.*@", ""))
end

-- What sapwf.core.new takes, for checked options: credentials from the key or given, or
-- nil, err (kind config). sapwf.new and sapwf_ngx.new both build on it.
function options.core(opts)
  -- PEM text, not a file: a path here is a common slip (curl's --cert takes one), and would
  -- fail only at the first token fetch, with a TLS error that blames the key's certificate.
  -- A config error, as for a key's fields: the type is right, the content is not. The value
  -- is never quoted: it may be the private key.
  for _, name in ipairs({ "cert", "key" }) do
    if opts[name] ~= nil and not find(opts[name], "-----BEGIN", 1, true) then
      return nil, errors.config(format("option %s is not PEM text (it has no -----BEGIN line): "
        .. "give the text, not a path to a file", name))
    end
  end
  local core_opts = {}
  if opts.service_key ~= nil then
    local from_key, err = servicekey.resolve(opts.service_key, opts)
    if not from_key then return nil, err end
    for k, v in pairs(from_key) do core_opts[k] = v end
  end
  for _, name in ipairs(CREDENTIALS) do
    -- read as the key's fields are: URLs trimmed, PEM "\n" escapes as newlines
    if opts[name] ~= nil then core_opts[name] = servicekey.clean(name, opts[name]) end
  end
  for _, name in ipairs({ "api_url", "token_url", "client_id" }) do
    if not core_opts[name] or core_opts[name] == "" then
      return nil, errors.config(format("no %s: give service_key, or api_url, token_url, "
        .. "client_id and client_secret", name))
    end
  end
  if not core_opts.client_secret and not (core_opts.cert and core_opts.key) then
    return nil, errors.config("no client_secret (nor cert and key for an x509 key)")
  end
  core_opts.api_url = service.base(core_opts.api_url)
  -- A typo in the scheme (htps://, none at all) is the key's or the option's fault: said
  -- here, not as a network failure retried on every call (libcurl sends http and https only).
  for _, name in ipairs({ "token_url", "api_url" }) do
    local scheme = match(core_opts[name], "^(%a[%w+.-]*)://")
    if not scheme or (lower(scheme) ~= "https" and lower(scheme) ~= "http") then
      return nil, errors.config(format("%s is not an https:// URL: %s", name,
        scheme and "its scheme is " .. scheme .. "://" or "it has no scheme"))
    end
  end
  if not opts.allow_http then
    for _, name in ipairs({ "token_url", "api_url" }) do
      local host = cleartext_host(core_opts[name])
      if host then
        return nil, errors.config(format("%s is http:// to %s: the client secret and tokens "
          .. "would cross the network in clear text; use https://, or pass allow_http = true "
          .. "(command line: --allow-http) if that network is yours", name, host))
      end
    end
  end
  -- A CA file that cannot be read would show only as a TLS error at the first https call,
  -- and never over http: said here, as the configuration's fault.
  -- (a NUL in it is a bad argument: sapwf.core raises for that, naming the option)
  if opts.cafile ~= nil and not find(opts.cafile, "\0", 1, true) then
    local problem = options.unreadable(opts.cafile)
    if problem then return nil, errors.config("cafile " .. problem) end
  end
  for _, name in ipairs(PASSED_ON) do core_opts[name] = opts[name] end
  return core_opts
end

-- Why the file at path cannot be read ("cannot be read: <path>: No such file or
-- directory"), or nil. The command line checks its --cafile with it too.
function options.unreadable(path)
  local file, err = io.open(path, "rb")
  if file then
    local _, read_err = file:read(0)            -- a directory opens; reading it fails
    file:close()
    if not read_err then return nil end
    err = path .. ": " .. tostring(read_err)
  end
  return "cannot be read: " .. tostring(err)
end

return options
