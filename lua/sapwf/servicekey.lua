--- Service keys and VCAP_SERVICES: where the token URL, client id, secret (or certificate)
-- and API URL come from.
--
-- resolve(source [, given]) -> { api_url, token_url, client_id, client_secret | cert, key }
--   | nil, err
--   source: a path, JSON text, or a table (a service key, a binding's `credentials`, or a
--   whole VCAP_SERVICES binding entry).
--
-- load(source) -> key table, path | nil, err: the first half of resolve, the key decoded.
--
-- from_vcap(text, name [, choose]) -> credentials, instance_name | nil, err
--
-- clean(option, value) -> value as a key's field would read (URLs trimmed, PEM unescaped)
--
-- Failures are `config` errors that name the missing field; they never repeat a value from
-- the key, which holds secrets.
local cjson_safe = require "cjson.safe"
local errors = require "sapwf.errors"
local service = require "sapwf.service"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, find, gsub, lower, match = string.format, string.find, string.gsub, string.lower,
  string.match
local concat, sort = table.concat, table.sort
local io_open = io.open
local sub = string.sub

local servicekey = {}

local LABELS = { workflow = true, ["process-automation-service"] = true }
local LABEL_TEXT = "workflow or process-automation-service"

local function config(fmt, ...)
  return nil, errors.config(format(fmt, ...))
end

-- The string at a dotted path ("uaa.clientid"), or nil and an error naming the path.
local function need(key, dotted)
  local value = key
  for part in dotted:gmatch("[^%.]+") do
    if type(value) ~= "table" then value = nil; break end
    value = value[part]
  end
  if type(value) ~= "string" or not find(value, "%S") then
    return config("service key has no %s", dotted)
  end
  return value
end

local function strip_slashes(url) return (gsub(url, "/+$", "")) end

-- A URL without the white space around it. Trimmed, not refused, when it comes from a key:
-- keys are copied and pasted (from the cockpit, a terminal, a chat, into files and
-- user-provided services), which brings along spaces and line ends that no URL has and that
-- libcurl would read as part of it (" https://h" as the host " https", "https://u/ " as a
-- path " "). Options go through here too (see clean), so they read as the key's fields.
local function url(text) return (match(text, "^%s*(.-)%s*$")) end

-- Keys written by hand or passed through env files often carry PEM newlines as "\n" escapes.
local function pem(text) return (gsub(text, "\\n", "\n")) end

-- How each option of sapwf.new that a key can give is read, wherever it comes from.
local CLEAN = { api_url = url, token_url = url, cert = pem, key = pem }

--- The value of an option (api_url, token_url, cert or key) as the same field of a key
-- reads: a URL without surrounding white space, PEM text with its "\n" escapes as newlines.
-- sapwf.options passes the given options through here, so that both read alike.
function servicekey.clean(option, value)
  local read = CLEAN[option]
  if read and type(value) == "string" then return read(value) end
  return value
end

-- The service key in a table that wraps it: a whole binding entry, or a key as cf CLI v8
-- prints it ({"credentials": {...}}), which a user-provided service may hold as it is.
local function unwrap(key)
  if type(key.uaa) ~= "table" and type(key.credentials) == "table" then
    return key.credentials
  end
  return key
end

local function is_x509(key)
  local kind = (type(key.uaa) == "table" and key.uaa["credential-type"])
               or key["credential-type"]
  return type(kind) == "string" and find(lower(kind), "^x509") ~= nil
end

--- Core options from a decoded service key table. given: the options given beside the key
-- (api_url, token_url, client_id, client_secret, cert, key), which win over it; a field the
-- key lacks is an error only when the option that replaces it is not given (a binding made
-- with your own certificate cannot carry your private key: `key` gives it).
function servicekey.from_table(key, given)
  given = given or {}
  key = unwrap(key)
  local has_uaa = type(key.uaa) == "table"
  -- The field at path, or nil when option is given instead, or nil and the error.
  local function field(path, option)
    if given[option] ~= nil then return nil end
    if not has_uaa then return config("service key has no uaa section") end
    return need(key, path)
  end
  local opts = {}
  local err
  opts.client_id, err = field("uaa.clientid", "client_id")
  if err then return nil, err end
  -- An x509 key, unless a secret is given: it wins, as any option does, so the token comes
  -- from uaa.url with it (the core would otherwise take the key's certificate and drop it).
  if has_uaa and is_x509(key) and given.client_secret == nil then
    local certurl
    certurl, err = field("uaa.certurl", "token_url")
    if err then return nil, err end
    opts.token_url = certurl and strip_slashes(url(certurl)) .. "/oauth/token"
    opts.cert, err = field("uaa.certificate", "cert")
    if err then return nil, err end
    opts.key, err = field("uaa.key", "key")
    if err then return nil, err end
    opts.cert, opts.key = opts.cert and pem(opts.cert), opts.key and pem(opts.key)
  else
    local uaa_url
    uaa_url, err = field("uaa.url", "token_url")
    if err then return nil, err end
    opts.token_url = uaa_url and strip_slashes(url(uaa_url)) .. "/oauth/token"
    opts.client_secret, err = field("uaa.clientsecret", "client_secret")
    if err then return nil, err end
  end
  local endpoints = key.endpoints
  local rest = type(endpoints) == "table" and endpoints.workflow_rest_url
  local spa = type(endpoints) == "table" and endpoints.api
  rest = type(rest) == "string" and url(rest)
  spa = type(spa) == "string" and url(spa)
  if rest and rest ~= "" then
    opts.api_url = service.base(rest)
  elseif spa and spa ~= "" then
    -- SAP Build Process Automation: the same v1 API behind its gateway.
    opts.api_url = service.spa_base(spa)
  elseif given.api_url == nil then
    return config("service key has no endpoints.workflow_rest_url "
                  .. "(nor endpoints.api of SAP Build Process Automation)")
  end
  return opts
end

-- What a message says of a path that could not be opened. Not the path itself: it may be
-- key text gone wrong (a paste, a cut-off line), and a key's text holds its secret; a file
-- that did open is named in full. io.open's message is "NAME: REASON", NAME as the C library
-- got it, which is the path up to its first NUL byte; anything else is dropped whole rather
-- than risk echoing part of the path.
local function unopened(reason, path)
  local nul = find(path, "\0", 1, true)
  local name = nul and sub(path, 1, nul - 1) or path
  reason = tostring(reason)
  if sub(reason, 1, #name + 2) == name .. ": " then
    reason = sub(reason, #name + 3) .. "; "
  else
    reason = ""
  end
  return "the file named could not be opened (" .. reason .. "the name is not repeated "
    .. "in case it is key text)"
end

-- The key text without what may come before its JSON: a UTF-8 byte order mark (editors on
-- Windows write one), and the line `cf service-key` prints first ("Getting key KEY for
-- service instance NAME as USER...", then an empty line), which users paste along. The
-- second result says whether that line was there.
local function key_text(text)
  if find(text, "^\239\187\191") then text = sub(text, 4) end
  local json = match(text, "^%s*Getting key [^\n]*\n(.*)$")
  if json then return json, true end
  return text, false
end

-- Whether a string given as the key is its text rather than a file's path: JSON, cf's
-- output, or anything holding a NUL byte (no path can: the C library would open a name cut
-- there) or a line break (key text that lost its brace, a paste; a key file's path has
-- none). Such a string is decoded, never opened, so no part of it reaches io.open's message.
local function is_text(text, cf_output)
  return cf_output or find(text, "^%s*{") ~= nil or find(text, "\0", 1, true) ~= nil
    or find(text, "[\r\n]") ~= nil
end

-- A key is a few kilobytes (one with an x509 certificate about ten): a file larger than
-- this holds no key, and reading it whole (/dev/zero, a log given by mistake) would only
-- use up memory.
local MAX_KEY_FILE = 1024 * 1024

-- A file's whole text, or nil and the message. Read once: the path may be /dev/stdin or a
-- pipe (`<(...)`), which gives its text only once.
local function read_file(path)
  local file, oserr = io_open(path, "rb")
  if not file then
    return nil, "cannot read service key file: " .. unopened(oserr, path)
  end
  local text, rerr, code = file:read(MAX_KEY_FILE + 1)
  file:close()
  if text then
    if #text > MAX_KEY_FILE then
      return nil, format("service key file '%s' is larger than %d bytes: no service key is",
                         path, MAX_KEY_FILE)
    end
    return text
  end
  if rerr == nil then return "" end                 -- read(n) at the end of an empty file
  -- A directory opens (fopen) but does not read: EISDIR is 21 on Linux, the BSDs and macOS.
  if code == 21 then return nil, format("service key file '%s' is a directory", path) end
  return nil, format("cannot read service key file '%s' (%s)", path, tostring(rerr))
end

--- The decoded service key from a path or the key's text (JSON, or `cf service-key`'s
-- output with its first line); a table is returned as it is. The second result is the path
-- the key was read from, nil for text or a table. Text is never taken as a path (see
-- is_text), and a file's content is always key text, never another path. The command line
-- reads its key through here once and hands the table on, so its messages are these.
function servicekey.load(source)
  if type(source) == "table" then return source end
  local what, path = "service key text", nil
  local text, cf_output = key_text(source)
  if not is_text(text, cf_output) then
    path = text
    local err
    text, err = read_file(path)
    if not text then return nil, errors.config(err) end
    what = format("service key file '%s'", path)
    text = key_text(text)
  end
  local key, jerr = cjson_safe.decode(text)
  if type(key) ~= "table" then
    -- cjson's message gives a position only, never the text.
    return config("%s is not JSON (%s)", what, tostring(jerr or "not an object"))
  end
  return key, path
end

--- Core options from a path, JSON text or table (as load takes them); given: as for
-- from_table.
function servicekey.resolve(source, given)
  local key, err = servicekey.load(source)
  if not key then return nil, err end
  return servicekey.from_table(key, given)
end

local function binding_name(entry)
  return entry.instance_name or entry.name or entry.binding_name
end

-- The bindings of a list whose name, instance name or binding name is name.
local function named(bindings, name)
  local found = {}
  for _, b in ipairs(bindings) do
    local entry = b.entry
    if entry.name == name or entry.instance_name == name or entry.binding_name == name then
      found[#found + 1] = b
    end
  end
  return found
end

-- Whether a binding is the workflow service's: by its label, which the service broker sets,
-- or by a tag, which the owner of a user-provided service sets for a key copied into it
-- (`cf cups my-wf -p key.json -t workflow`). A tag is that owner's word that the binding is a
-- workflow binding, so a tagged binding is found without a name, as a labelled one is.
local function is_workflow(b)
  if LABELS[b.label] then return true end
  if type(b.entry.tags) == "table" then
    for _, tag in ipairs(b.entry.tags) do
      if LABELS[tag] then return true end
    end
  end
  return false
end

local function names_of(bindings)
  local names = {}
  for i, b in ipairs(bindings) do names[i] = tostring(binding_name(b.entry)) end
  return concat(names, ", ")
end

--- The credentials of the workflow binding in VCAP_SERVICES text (optionally the one with
-- that name), and the service instance name for hints. Without a name: the one binding
-- labelled or tagged workflow or process-automation-service. With a name: that binding,
-- under any label (a user-provided service holding a key, `cf cups my-wf -p key.json`),
-- as long as its credentials hold a service key. choose: how the caller's user names one of
-- several bindings, for the error that asks for it (the command line has an option where a
-- Lua program passes an argument).
function servicekey.from_vcap(text, name, choose)
  if type(text) ~= "string" or text == "" then return config("VCAP_SERVICES is not set") end
  local services, jerr = cjson_safe.decode(text)
  if type(services) ~= "table" then
    return config("VCAP_SERVICES is not JSON (%s)", tostring(jerr or "not an object"))
  end
  choose = choose or "pass the name to from_env"
  local labels = {}
  for label in pairs(services) do labels[#labels + 1] = label end
  sort(labels, function(a, b) return tostring(a) < tostring(b) end)
  local all, workflow = {}, {}
  for _, label in ipairs(labels) do
    local entries = services[label]
    if type(entries) == "table" then
      for _, entry in ipairs(entries) do
        if type(entry) == "table" then
          local b = { entry = entry, label = entry.label or label }
          all[#all + 1] = b
          if is_workflow(b) then workflow[#workflow + 1] = b end
        end
      end
    end
  end
  local chosen = workflow
  if name ~= nil then
    -- The workflow bindings first, so that another binding of the same name (a binding
    -- name may repeat an instance name) does not make the choice ambiguous.
    chosen = named(workflow, name)
    if #chosen == 0 then chosen = named(all, name) end
  end
  if #chosen == 0 then
    if name ~= nil then
      return config("VCAP_SERVICES has no binding named '%s'%s", name,
                    #all > 0 and format(" (found: %s)", names_of(all)) or "")
    end
    return config("VCAP_SERVICES has no binding labelled or tagged %s%s", LABEL_TEXT,
                  #all > 0 and format(" (found: %s): to use one of them, %s", names_of(all),
                                      choose) or "")
  end
  if #chosen > 1 then
    if name == nil then
      return config("VCAP_SERVICES has %d %s bindings (%s): %s", #chosen, LABEL_TEXT,
                    names_of(chosen), choose)
    end
    return config("VCAP_SERVICES has %d bindings named '%s'", #chosen, name)
  end
  local b = chosen[1]
  local entry = b.entry
  if type(entry.credentials) ~= "table" then
    return config("VCAP_SERVICES binding '%s' has no credentials",
                  tostring(binding_name(entry)))
  end
  if not LABELS[b.label] then
    -- Not from the service broker: it may hold anything (a database URL, another service's
    -- key). Say what it lacks here, rather than let from_table name one field of a key.
    local key, missing = unwrap(entry.credentials), {}
    if type(key.uaa) ~= "table" then missing[#missing + 1] = "uaa" end
    if type(key.endpoints) ~= "table" then missing[#missing + 1] = "endpoints" end
    if #missing > 0 then
      return config("VCAP_SERVICES binding '%s' (label %s) holds no workflow service key: "
                    .. "its credentials have no %s", tostring(binding_name(entry)),
                    tostring(b.label), concat(missing, " and no "))
    end
  end
  return entry.credentials, binding_name(entry)
end

-- Puts a binding's credentials (from_vcap) into a client's options: its instance name is
-- the client's `instance` unless the options name one (sapwf.from_env, the command line).
function servicekey.bind(opts, credentials, instance)
  opts.service_key = credentials
  if opts.instance == nil then opts.instance = instance end
  return opts
end

return servicekey
