-- Service keys, VCAP_SERVICES and sapwf.new's options. Most need no server: a client that
-- is never used sends nothing. The from_env calls against the emulator start one.
local servicekey = require "sapwf.servicekey"
local sapwf = require "sapwf"
local cjson = require "cjson"

local SECRET = "S3cr3t$Value=for|tests"

local function classic_key(overrides)
  local key = {
    endpoints = {
      workflow_odata_url = "https://api.workflow-sap.example/workflow-service/odata",
      workflow_rest_url = "https://api.workflow-sap.example/workflow-service/rest/",
    },
    uaa = {
      clientid = "sb-clone-1!b2|workflow!b10150",
      clientsecret = SECRET,
      url = "https://sub.authentication.example/",
      xsappname = "clone-1!b2|workflow!b10150",
    },
  }
  for path, value in pairs(overrides or {}) do
    local section, field = path:match("^(%w+)%.(.+)$")
    if value == "nil" then key[section][field] = nil else key[section][field] = value end
  end
  return key
end

local temp_files = {}
local function write_file(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  temp_files[#temp_files + 1] = name
  return name
end

teardown(function()
  for _, name in ipairs(temp_files) do os.remove(name) end
end)

-- No error message or field may carry the secret.
local function assert_no_secret(err)
  assert.is_nil(tostring(err):find(SECRET, 1, true))
  for _, v in pairs(err) do
    assert.is_nil(tostring(v):find(SECRET, 1, true))
  end
end

describe("servicekey.resolve", function()
  it("reads a workflow service key from a file", function()
    local path = write_file(cjson.encode(classic_key()))
    local opts = assert(servicekey.resolve(path))
    assert.same({
      api_url = "https://api.workflow-sap.example/workflow-service/rest",
      token_url = "https://sub.authentication.example/oauth/token",
      client_id = "sb-clone-1!b2|workflow!b10150",
      client_secret = SECRET,
    }, opts)
  end)

  it("reads JSON text and tables the same way", function()
    local from_text = assert(servicekey.resolve("  " .. cjson.encode(classic_key())))
    local from_table = assert(servicekey.resolve(classic_key()))
    assert.same(from_text, from_table)
    assert.equal("https://sub.authentication.example/oauth/token", from_table.token_url)
  end)

  it("reads a whole VCAP_SERVICES binding entry", function()
    local opts = assert(servicekey.resolve({ label = "workflow", name = "wf",
                                              credentials = classic_key() }))
    assert.equal(SECRET, opts.client_secret)
  end)

  for _, field in ipairs({ "uaa.url", "uaa.clientid", "uaa.clientsecret",
                           "endpoints.workflow_rest_url" }) do
    it("names a missing " .. field, function()
      local opts, err = servicekey.resolve(classic_key({ [field] = "nil" }))
      assert.is_nil(opts)
      assert.is_true(sapwf.is_error(err))
      assert.equal("config", err.kind)
      assert.matches("service key has no " .. field:gsub("%.", "%%."), err.message)
      assert_no_secret(err)
    end)
  end

  it("names a field of the wrong type as missing", function()
    local _, err = servicekey.resolve(classic_key({ ["uaa.clientsecret"] = 12 }))
    assert.equal("service key has no uaa.clientsecret", err.message)
  end)

  it("reports a key without uaa section", function()
    local _, err = servicekey.resolve({ endpoints = {} })
    assert.equal("service key has no uaa section", err.message)
  end)

  it("reports a missing file with the reason, not the name (it may be key text)", function()
    local _, err = servicekey.resolve("/nonexistent/dir/service-key.json")
    assert.equal("config", err.kind)
    assert.matches("^cannot read service key file: the file named could not be opened %(No "
                   .. "such file or directory;", err.message)
    assert.is_nil(err.message:find("/nonexistent", 1, true))
  end)

  it("reports a file that is not JSON without repeating it", function()
    local path = write_file('{"uaa": {"clientsecret": "' .. SECRET .. '", oops')
    local _, err = servicekey.resolve(path)
    assert.equal("config", err.kind)
    assert.matches("is not JSON", err.message)
    assert_no_secret(err)
    local _, err2 = servicekey.resolve(write_file(""))
    assert.matches("is not JSON", err2.message)
  end)

  it("takes a string with a NUL byte or a line break as key text, never as a path", function()
    local path = write_file(cjson.encode(classic_key()))
    -- The C library would open the name cut at the NUL, which is this key file.
    for _, text in ipairs({ path .. "\0", path .. "\0tail", "\0" .. path, path .. "\n",
                            "Getting key k for service instance i as me...\n\n" .. path }) do
      local opts, err = servicekey.resolve(text)
      assert.is_nil(opts)
      assert.equal("config", err.kind)
      assert.matches("^service key text is not JSON %(", err.message)
    end
    -- what cf prints when there is no such key: the file holds text, not a key
    local cf_failed = write_file("Getting key k for service instance i as me...\n\n"
      .. "No service key k found for service instance i\n")
    local _, err = servicekey.resolve(cf_failed)
    assert.matches("^service key file '" .. cf_failed:gsub("%p", "%%%0") .. "' is not JSON %(",
                   err.message)
  end)

  it("reads a file's content as key text, never as the path of another file", function()
    local key_file = write_file(cjson.encode(classic_key()))
    local pointer = write_file(key_file)
    local _, err = servicekey.resolve(pointer)
    assert.equal("service key file '" .. pointer .. "' is not JSON (Expected value but found "
                 .. "invalid token at character 1)", err.message)
  end)

  it("names a directory given as the key file", function()
    local dir = write_file("")
    os.remove(dir)
    assert.is_true(os.execute("mkdir " .. dir) ~= false)
    finally(function() os.execute("rmdir " .. dir) end)
    for _, path in ipairs({ dir, dir .. "/" }) do
      local opts, err = servicekey.resolve(path)
      assert.is_nil(opts)
      assert.equal("config", err.kind)
      assert.equal("service key file '" .. path .. "' is a directory", err.message)
    end
  end)

  it("reads at most 1 MiB of a key file: /dev/zero, or a log given by mistake, is no key",
     function()
    for _, path in ipairs({ "/dev/zero", write_file(string.rep(" ", 1024 * 1024) .. "{}") }) do
      local opts, err = servicekey.resolve(path)
      assert.is_nil(opts)
      assert.equal("config", err.kind)
      assert.equal("service key file '" .. path .. "' is larger than 1048576 bytes: no "
                   .. "service key is", err.message)
    end
    local _, err = servicekey.resolve(write_file(""))            -- empty: read, not JSON
    assert.matches("is not JSON", err.message)
  end)

  it("load gives the decoded key and the path it was read from, if any", function()
    local key = classic_key()
    local path = write_file(cjson.encode(key))
    local loaded, from = servicekey.load(path)
    assert.same(key, loaded)
    assert.equal(path, from)
    loaded, from = servicekey.load(cjson.encode(key))
    assert.same(key, loaded)
    assert.is_nil(from)
    assert.equal(key, (servicekey.load(key)))
    local none, err = servicekey.load(path .. ".missing")
    assert.is_nil(none)
    assert.equal("config", err.kind)
  end)

  it("reads an x509 key: certurl, PEM with \\n escapes, no secret", function()
    local key = classic_key({ ["uaa.clientsecret"] = "nil" })
    key.uaa["credential-type"] = "x509"
    key.uaa.certurl = "https://sub.authentication.cert.example"
    key.uaa.certificate = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"
    key.uaa.key = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"
    local opts = assert(servicekey.resolve(key))
    assert.equal("https://sub.authentication.cert.example/oauth/token", opts.token_url)
    assert.equal("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", opts.cert)
    assert.equal("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", opts.key)
    assert.is_nil(opts.client_secret)
  end)

  it("takes the credential type from the top level too and names a missing certurl", function()
    local key = classic_key()
    key["credential-type"] = "X509_GENERATED"
    local _, err = servicekey.resolve(key)
    assert.equal("service key has no uaa.certurl", err.message)
    key.uaa.certurl = "https://cert.example"
    local _, err2 = servicekey.resolve(key)
    assert.equal("service key has no uaa.certificate", err2.message)
  end)

  it("reads a SAP Build Process Automation key (endpoints.api)", function()
    local key = classic_key({ ["endpoints.workflow_rest_url"] = "nil" })
    key.endpoints.api = "https://spa-api-gateway.example/"
    local opts = assert(servicekey.resolve(key))
    assert.equal("https://spa-api-gateway.example/public/workflow/rest", opts.api_url)
  end)
end)

describe("servicekey.from_vcap", function()
  local function vcap(entries)
    return cjson.encode(entries)
  end
  local function binding(name, label)
    return { label = label or "workflow", name = name, instance_name = name, tags = {},
             plan = "standard", credentials = classic_key() }
  end

  it("finds the one workflow binding and its instance name", function()
    local creds, name = servicekey.from_vcap(vcap({ workflow = { binding("my-wf") },
                                                    xsuaa = { { label = "xsuaa" } } }))
    assert.equal(SECRET, creds.uaa.clientsecret)
    assert.equal("my-wf", name)
  end)

  it("finds a process-automation-service binding", function()
    local _, name = servicekey.from_vcap(vcap({
      ["process-automation-service"] = { binding("spa", "process-automation-service") } }))
    assert.equal("spa", name)
  end)

  it("asks for a name when there are several, and picks by name", function()
    local text = vcap({ workflow = { binding("a"), binding("b") } })
    local creds, err = servicekey.from_vcap(text)
    assert.is_nil(creds)
    assert.equal("VCAP_SERVICES has 2 workflow or process-automation-service bindings (a, b): "
                 .. "pass the name to from_env", err.message)
    local _, name = servicekey.from_vcap(text, "b")
    assert.equal("b", name)
  end)

  it("names what it searched when nothing matches", function()
    local _, err = servicekey.from_vcap(vcap({ workflow = { binding("a") },
                                               xsuaa = { { label = "xsuaa", name = "x" } } }),
                                        "zzz")
    assert.equal("VCAP_SERVICES has no binding named 'zzz' (found: a, x)", err.message)
    local _, err2 = servicekey.from_vcap(vcap({ xsuaa = { { label = "xsuaa", name = "x" } } }))
    assert.equal("VCAP_SERVICES has no binding labelled or tagged workflow or "
                 .. "process-automation-service (found: x): to use one of them, pass the name "
                 .. "to from_env", err2.message)
    local _, err3 = servicekey.from_vcap(vcap({}))
    assert.equal("VCAP_SERVICES has no binding labelled or tagged workflow or "
                 .. "process-automation-service", err3.message)
    local _, err4 = servicekey.from_vcap(vcap({}), "zzz")
    assert.equal("VCAP_SERVICES has no binding named 'zzz'", err4.message)
  end)

  it("takes a user-provided binding of a service key by name", function()
    -- cf cups my-wf -p key.json: label user-provided, no tag
    local ups = binding("my-wf", "user-provided")
    local text = vcap({ ["user-provided"] = { ups }, workflow = { binding("other") } })
    local creds, name = servicekey.from_vcap(text, "my-wf")
    assert.equal(SECRET, creds.uaa.clientsecret)
    assert.equal("my-wf", name)
    -- the key as cf CLI v8 prints it, {"credentials": {...}}
    ups.credentials = { credentials = classic_key() }
    local creds2 = assert(servicekey.from_vcap(vcap({ ["user-provided"] = { ups } }), "my-wf"))
    assert.equal(SECRET, assert(servicekey.resolve(creds2)).client_secret)
  end)

  it("names what a binding picked by name lacks to be a workflow service key", function()
    local db = { label = "user-provided", name = "db", credentials = { uri = "postgres://x" } }
    local _, err = servicekey.from_vcap(vcap({ ["user-provided"] = { db } }), "db")
    assert.equal("config", err.kind)
    assert.equal("VCAP_SERVICES binding 'db' (label user-provided) holds no workflow service "
                 .. "key: its credentials have no uaa and no endpoints", err.message)
    local half = { label = "xsuaa", name = "auth", credentials = { uaa = {} } }
    local _, err2 = servicekey.from_vcap(vcap({ xsuaa = { half } }), "auth")
    assert.equal("VCAP_SERVICES binding 'auth' (label xsuaa) holds no workflow service key: "
                 .. "its credentials have no endpoints", err2.message)
  end)

  it("finds a binding tagged workflow or process-automation-service without a name",
     function()
    -- cf cups my-wf -p key.json -t workflow
    local ups = binding("my-wf", "user-provided")
    ups.tags = { "sap", "workflow" }
    local creds, name = servicekey.from_vcap(vcap({ ["user-provided"] = { ups },
                                                    xsuaa = { { label = "xsuaa" } } }))
    assert.equal(SECRET, creds.uaa.clientsecret)
    assert.equal("my-wf", name)
    ups.tags = { "process-automation-service" }
    local _, err = servicekey.from_vcap(vcap({ ["user-provided"] = { ups },
                                               workflow = { binding("wf") } }))
    assert.equal("VCAP_SERVICES has 2 workflow or process-automation-service bindings "
                 .. "(my-wf, wf): pass the name to from_env", err.message)
    -- a tagged binding is still checked: it may not hold a key
    ups.credentials = { uaa = classic_key().uaa }
    local _, err2 = servicekey.from_vcap(vcap({ ["user-provided"] = { ups } }))
    assert.equal("VCAP_SERVICES binding 'my-wf' (label user-provided) holds no workflow "
                 .. "service key: its credentials have no endpoints", err2.message)
  end)

  it("reports an unset or broken VCAP_SERVICES", function()
    local _, err = servicekey.from_vcap(nil)
    assert.equal("VCAP_SERVICES is not set", err.message)
    local _, err2 = servicekey.from_vcap("{oops")
    assert.matches("^VCAP_SERVICES is not JSON", err2.message)
  end)
end)

describe("sapwf.from_env", function()
  -- os.getenv cannot be changed from Lua: run a child interpreter with VCAP_SERVICES set.
  local function run_child(vcap_text, code)
    local script = write_file(
      'package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path\n' ..
      'package.cpath = "./build/lua5.4/?.so;" .. package.cpath\n' ..
      'local sapwf = require "sapwf"\n' .. code)
    local env = write_file(vcap_text)
    local pipe = assert(io.popen('VCAP_SERVICES="$(cat ' .. env .. ')" lua5.4 ' .. script
                                 .. ' 2>&1'))
    local out = pipe:read("*a")
    pipe:close()
    return out
  end

  local text = cjson.encode({ workflow = {
    { label = "workflow", name = "wf-one", credentials = classic_key() },
    { label = "workflow", name = "wf-two", credentials = classic_key() } } })

  it("builds a client from the named binding", function()
    local out = run_child(text, [[
      local wf, err = sapwf.from_env("wf-two", { timeout = 5 })
      print(tostring(wf), wf and wf._instance)]])
    assert.equal("sapwf client (https://api.workflow-sap.example/workflow-service/rest)\twf-two\n",
                 out)
  end)

  it("builds a client from a user-provided binding named", function()
    local ups = cjson.encode({ ["user-provided"] = {
      { label = "user-provided", name = "my-wf", instance_name = "my-wf", tags = {},
        credentials = classic_key() } } })
    local out = run_child(ups, [[
      local wf, err = sapwf.from_env("my-wf")
      print(tostring(wf or err), wf and wf._instance)]])
    assert.equal("sapwf client (https://api.workflow-sap.example/workflow-service/rest)\tmy-wf\n",
                 out)
  end)

  it("returns a config error naming the choices without a name", function()
    local out = run_child(text, [[
      local wf, err = sapwf.from_env()
      print(wf, err.kind, err.message)]])
    assert.equal("nil\tconfig\tVCAP_SERVICES has 2 workflow or process-automation-service "
                 .. "bindings (wf-one, wf-two): pass the name to from_env\n", out)
  end)

  describe("against the emulator", function()
    local helpers = require "spec.helpers"
    local emu

    setup(function() emu = helpers.start_emulator() end)
    teardown(function() if emu then emu:stop() end end)
    before_each(function() emu:reset() end)

    local function binding(name, label, client)
      return { label = label, name = name, instance_name = name,
               credentials = emu:service_key(client or "full") }
    end

    it("makes calls with the only binding's credentials", function()
      local out = run_child(cjson.encode({ workflow = { binding("wf-only", "workflow") } }), [[
        local wf = assert(sapwf.from_env())
        local inst = assert(wf:start("simple", { from = "env" }))
        io.write(inst.id, " ", inst.status, " ", inst.startedBy)]])
      local id, status, by = out:match("^(%S+) (%S+) (%S+)$")
      assert.equal("RUNNING", status, out)
      assert.equal(emu:service_key("full").uaa.clientid, by)
      local found = {}
      for _, inst in ipairs(emu:instances()) do found[inst.id] = inst end
      assert.same({ from = "env" }, found[id].context)
    end)

    it("takes a process-automation-service binding by name among others", function()
      local text = cjson.encode({
        workflow = { binding("wf-a", "workflow", "limited") },
        ["process-automation-service"] = { binding("spa", "process-automation-service") } })
      local out = run_child(text, [[
        local wf = assert(sapwf.from_env("spa"))
        io.write(#assert(wf:definitions()))]])
      assert.equal("3", out)
    end)

    it("names the binding's instance in 403 hints, unless opts.instance says otherwise",
       function()
      local text = cjson.encode({ workflow = { binding("wf-prod", "workflow", "limited") } })
      local out = run_child(text, [[
        local _, err = assert(sapwf.from_env()):instances()
        local _, err2 = assert(sapwf.from_env(nil, { instance = "other" })):instances()
        io.write(err.kind, "|", err.hint, "|", err2.hint)]])
      local kind, hint, hint2 = out:match("^(.-)|(.-)|(.*)$")
      assert.equal("forbidden", kind, out)
      assert.matches("^cf update%-service wf%-prod %-c", hint)
      assert.matches("^cf update%-service other %-c", hint2)
    end)

    it("returns a config error when VCAP_SERVICES is not set", function()
      local script = write_file(
        'package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path\n' ..
        'package.cpath = "./build/lua5.4/?.so;" .. package.cpath\n' ..
        'local wf, err = require("sapwf").from_env()\n' ..
        'io.write(tostring(wf), "|", err.kind, "|", err.message)')
      local pipe = assert(io.popen("env -u VCAP_SERVICES lua5.4 " .. script .. " 2>&1"))
      local out = pipe:read("*a")
      pipe:close()
      assert.equal("nil|config|VCAP_SERVICES is not set", out)
    end)
  end)

  it("raises for wrong argument types and a service_key option", function()
    assert.has_error(function() sapwf.from_env(5) end,
                     "bad argument #1 to 'from_env' (string expected, got number)")
    assert.has_error(function() sapwf.from_env(nil, { service_key = "x" }) end,
                     "bad option 'service_key' (from_env reads VCAP_SERVICES)")
    assert.has_error(function() sapwf.from_env(nil, { timout = 1 }) end,
                     "bad option 'timout' (unknown option)")
    assert.has_error(function() sapwf.from_env(nil, "fast") end,
                     "bad argument #2 to 'from_env' (table expected, got string)")
    assert.has_error(function() sapwf.from_env(nil, { timeout = "5" }) end,
                     "bad option 'timeout' (number expected, got string)")
  end)
end)

describe("sapwf.new options", function()
  it("builds a client from a key file and shows its API URL, never the secret", function()
    local wf = assert(sapwf.new{ service_key = write_file(cjson.encode(classic_key())) })
    assert.equal("sapwf client (https://api.workflow-sap.example/workflow-service/rest)",
                 tostring(wf))
    wf:close()
    assert.equal("sapwf client (closed)", tostring(wf))
  end)

  it("takes explicit credentials and lets them override the key", function()
    local wf = assert(sapwf.new{ service_key = classic_key(),
                                 api_url = "http://127.0.0.1:9/other/" })
    assert.equal("sapwf client (http://127.0.0.1:9/other)", tostring(wf))
    wf:close()
    local wf2 = assert(sapwf.new{ api_url = "https://h/rest", token_url = "https://h/oauth/token",
                                  client_id = "c", client_secret = "s", timeout = 3,
                                  connect_timeout = 1, verify = true, token_margin = 30,
                                  max_response = 1024, user_agent = "t/1",
                                  instance = "my-wf" })
    wf2:close()
  end)

  it("returns a config error for missing credentials", function()
    local wf, err = sapwf.new{ api_url = "http://h/rest", token_url = "http://h/t",
                               client_id = "c" }
    assert.is_nil(wf)
    assert.equal("config", err.kind)
    assert.equal("no client_secret (nor cert and key for an x509 key)", err.message)
    local _, err2 = sapwf.new{ timeout = 5 }
    assert.matches("^no api_url", err2.message)
  end)

  it("takes an option for a field the key lacks, as the README says they override it",
     function()
    -- no API URL in the key: api_url gives it
    local wf = assert(sapwf.new{ service_key = classic_key({ ["endpoints.workflow_rest_url"] =
                                   "nil" }), api_url = "https://h.example/rest" })
    assert.equal("sapwf client (https://h.example/rest)", tostring(wf))
    wf:close()
    -- a binding made with your own certificate has no private key: key gives it
    local x509 = classic_key({ ["uaa.clientsecret"] = "nil" })
    x509.uaa["credential-type"] = "X509_PROVIDED"
    x509.uaa.certurl = "https://sub.authentication.cert.example"
    x509.uaa.certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    local opts = assert(servicekey.resolve(x509, { key = "PEM" }))
    assert.is_nil(opts.key)
    assert.equal("https://sub.authentication.cert.example/oauth/token", opts.token_url)
    -- a secret given for a key without one
    opts = assert(servicekey.resolve(classic_key({ ["uaa.clientsecret"] = "nil" }),
                                     { client_secret = "given" }))
    assert.equal("sb-clone-1!b2|workflow!b10150", opts.client_id)
    -- a secret given beside an x509 key wins over its certificate: the token from uaa.url
    opts = assert(servicekey.resolve(x509, { client_secret = "given" }))
    assert.is_nil(opts.cert)
    assert.is_nil(opts.key)
    assert.equal("https://sub.authentication.example/oauth/token", opts.token_url)
    -- what neither has is still named
    local _, err = servicekey.resolve(x509)
    assert.equal("service key has no uaa.key", err.message)
    local _, err2 = servicekey.resolve(classic_key({ ["endpoints.workflow_rest_url"] = "nil" }),
                                      { key = "PEM" })
    assert.matches("^service key has no endpoints.workflow_rest_url", err2.message)
  end)

  it("returns the key's config error", function()
    local wf, err = sapwf.new{ service_key = classic_key({ ["uaa.clientsecret"] = "nil" }) }
    assert.is_nil(wf)
    assert.equal("service key has no uaa.clientsecret", err.message)
    assert.equal("sapwf: config: service key has no uaa.clientsecret", tostring(err))
  end)

  it("raises for unknown options and wrong types, naming them", function()
    assert.has_error(function() sapwf.new{ timout = 5 } end,
                     "bad option 'timout' (unknown option)")
    assert.has_error(function() sapwf.new{ timeout = "5" } end,
                     "bad option 'timeout' (number expected, got string)")
    assert.has_error(function() sapwf.new{ service_key = 5 } end,
                     "bad option 'service_key' (string or table expected, got number)")
    assert.has_error(function() sapwf.new{ verify = "no" } end,
                     "bad option 'verify' (boolean expected, got string)")
    assert.has_error(function() sapwf.new("key.json") end,
                     "bad argument #1 to 'new' (table expected, got string)")
  end)

  it("raises for an empty credential, at the caller, rather than let it replace the key's; " ..
     "for an empty key path, instance or User-Agent too", function()
    for _, name in ipairs({ "api_url", "token_url", "client_id", "client_secret", "cert",
                            "key", "instance", "user_agent" }) do
      for _, empty in ipairs({ "", " \n" }) do
        local ok, msg = pcall(function()
          local wf = sapwf.new{ service_key = classic_key(), [name] = empty }
          return wf
        end)
        assert.is_false(ok, name)
        assert.matches("02%-servicekey_spec%.lua:%d+: bad option '" .. name .. "' %(non%-empty "
                       .. "string expected%)$", msg)
      end
    end
    assert.has_error(function() sapwf.from_env(nil, { api_url = "" }) end,
                     "bad option 'api_url' (non-empty string expected)")
    local ok, msg = pcall(sapwf.new, { service_key = "" })
    assert.is_false(ok)
    assert.matches("bad option 'service_key' (non-empty string expected)", msg, 1, true)
  end)

  it("refuses a cert or key that is not PEM text (a path), naming the option", function()
    local opts = { api_url = "https://h/rest", token_url = "https://h/oauth/token",
                   client_id = "c", cert = "/etc/ssl/client.pem",
                   key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n" }
    local wf, err = sapwf.new(opts)
    assert.is_nil(wf)
    assert.equal("config", err.kind)
    assert.equal("option cert is not PEM text (it has no -----BEGIN line): give the text, not "
                 .. "a path to a file", err.message)
    opts.cert, opts.key = opts.key, "client.key"
    local _, err2 = sapwf.new(opts)
    assert.equal("option key is not PEM text (it has no -----BEGIN line): give the text, not "
                 .. "a path to a file", err2.message)
    assert.is_nil(err2.message:find("client.key", 1, true))
  end)

  it("reads cert and key options with \\n escapes as it reads them in a key", function()
    local cert = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"
    local key = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"
    local core = assert(require("sapwf.options").core{ api_url = "https://h/rest",
      token_url = "https://h/oauth/token", client_id = "c", cert = cert, key = key })
    assert.equal("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", core.cert)
    assert.equal("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", core.key)
  end)

  it("drops white space around the URLs of a key and of the options", function()
    -- pasted from a browser or terminal: a space, a line end
    local key = classic_key({ ["uaa.url"] = " https://sub.authentication.example/ \n" })
    key.endpoints.workflow_rest_url = "\thttps://api.workflow-sap.example/workflow-service/rest "
    local opts = assert(servicekey.resolve(key))
    assert.equal("https://sub.authentication.example/oauth/token", opts.token_url)
    assert.equal("https://api.workflow-sap.example/workflow-service/rest", opts.api_url)
    local x509 = classic_key({ ["uaa.clientsecret"] = "nil" })
    x509.uaa["credential-type"] = "x509"
    x509.uaa.certurl = "https://sub.authentication.cert.example \r\n"
    x509.uaa.certificate, x509.uaa.key = "-----BEGIN C", "-----BEGIN K"
    assert.equal("https://sub.authentication.cert.example/oauth/token",
                 assert(servicekey.resolve(x509)).token_url)
    local spa = classic_key({ ["endpoints.workflow_rest_url"] = "nil" })
    spa.endpoints.api = "https://spa-api-gateway.example/ "
    assert.equal("https://spa-api-gateway.example/public/workflow/rest",
                 assert(servicekey.resolve(spa)).api_url)
    local core = assert(require("sapwf.options").core{ api_url = "https://h/rest/v1\n",
      token_url = " https://h/oauth/token", client_id = "c", client_secret = "s" })
    assert.equal("https://h/rest", core.api_url)
    assert.equal("https://h/oauth/token", core.token_url)
    local wf = assert(sapwf.new{ service_key = key, token_url = " https://h/oauth/token " })
    wf:close()
  end)

  it("points the raised error at the caller's line", function()
    local ok, msg = pcall(function() local wf = sapwf.new{ bogus = 1 }; return wf end)
    assert.is_false(ok)
    assert.matches("02%-servicekey_spec%.lua:%d+: bad option 'bogus'", msg)
  end)
end)
