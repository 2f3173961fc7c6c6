-- What one run of the command line shares between its parts: the parsed arguments, the output
-- and the client, opened on first use from the service key the global options point to.
local servicekey = require "sapwf.servicekey"

local M = {}

local Session = {}
Session.__index = Session

function M.new(args, out)
  return setmetatable({ args = args, out = out }, Session)
end

local function config_error(message, no_key)
  return nil, { kind = "config", message = message, no_key = no_key }
end

-- Where the service key comes from: --service-key, then SAPWF_SERVICE_KEY (a file, or the
-- key's text, as CI secrets often are: JSON, or `cf service-key`'s output as printed), then
-- VCAP_SERVICES. Returns a description {source=, key=} (key: the decoded key table) or
-- {source="VCAP_SERVICES", vcap=true}, or nil and a config error.
--
-- The key is read once, by the library's servicekey.load, and kept: doctor and the client
-- both need it, and /dev/stdin or `<(cf service-key ...)` give their text only once. The
-- client gets the table, not the text, so a file's content is never taken for a path and
-- every message about the key is the library's (they never quote key text: it holds the
-- client secret).
function Session:key_source()
  if self.source then return self.source end
  local args = self.args
  local given = args.service_key
  local from = "--service-key"
  if not given then
    local env = os.getenv("SAPWF_SERVICE_KEY")
    if env and env ~= "" then given, from = env, "SAPWF_SERVICE_KEY" end
  end
  if given then
    local key, path = servicekey.load(given)
    if not key then return nil, path end
    self.source = { source = path or from, key = key }
    return self.source
  end
  local vcap = os.getenv("VCAP_SERVICES")
  if vcap and vcap ~= "" then
    return { source = "VCAP_SERVICES", vcap = true }
  end
  return config_error("no service key: give --service-key FILE, set SAPWF_SERVICE_KEY, or "
    .. "run where VCAP_SERVICES has a workflow binding", true)
end

-- The workflow binding in VCAP_SERVICES (the one --instance names): credentials, instance
-- name, or nil and a config error that asks for --instance when there are several.
function Session:binding()
  return servicekey.from_vcap(os.getenv("VCAP_SERVICES"), self.args.instance_name,
    "give --instance NAME")
end

-- The --header options (the parser made each a { name, value } pair) as the headers option
-- takes them: {name = value}.
local function headers_of(list)
  if not list or #list == 0 then return nil end
  local headers = {}
  for _, pair in ipairs(list) do headers[pair[1]] = pair[2] end
  return headers
end

-- The command-line option of each client option client_options passes.
local FLAG_OF = { timeout = "--timeout", cafile = "--cafile", headers = "--header",
                  instance = "--instance", allow_http = "--allow-http", service = "--service" }

-- instance names the service instance in the cf commands of 403 hints.
function Session:client_options()
  return { timeout = self.args.timeout, cafile = self.args.cafile,
           headers = headers_of(self.args.headers),
           instance = self.args.instance_name, allow_http = self.args.allow_http or nil,
           service = self.args.service }
end

-- The sapwf client, opened once. Returns client or nil, err.
function Session:client()
  if self.wf then
    return self.wf
  end
  local source, err = self:key_source()
  if not source then
    return nil, err
  end
  local sapwf = require "sapwf"
  local opts
  opts, err = self:client_options()
  if not opts then
    return nil, err
  end
  if source.vcap then
    -- as sapwf.from_env, with the binding asked for in the command line's words
    local credentials, instance = self:binding()
    if not credentials then return nil, instance end
    servicekey.bind(opts, credentials, instance)
  else
    opts.service_key = source.key
  end
  local ok, wf
  ok, wf, err = pcall(sapwf.new, opts)
  if not ok then
    -- An option value sapwf refuses raises in new (a --header it cannot send; the message
    -- names no header value; parser.lua holds --timeout within the core's bound, and this
    -- catches it should the two ever differ): a usage error under the option's name on the
    -- command line. Anything else raised there is a bug.
    local option, reason = tostring(wf):match("bad option '([%w_]+)' %((.*)%)$")
    if option and FLAG_OF[option] then
      return nil, { kind = "usage", message = FLAG_OF[option] .. ": " .. reason }
    end
    error(wf, 0)
  end
  if not wf then
    if type(err) == "table" and err.kind == nil then
      err.kind = "config"
    end
    return nil, err
  end
  self.wf = wf
  return wf
end

function Session:close()
  if self.wf then
    self.wf:close()
    self.wf = nil
  end
end

return M
