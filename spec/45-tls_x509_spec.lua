-- TLS and x509 service keys: verification is on unless turned off in so many words, a
-- wrong CA is kind tls with a hint, cafile works; x509 keys (certificate and key as PEM,
-- also with literal \n as some tools print them) get their token over mutual TLS from the
-- emulator's listener, which demands a client certificate of its CA (ssl_verify_client).
local sapwf = require "sapwf"
local helpers = require "spec.helpers"
local R = require "spec.support.reliability"

local X509_ID = "sb-sapwf-x509!b1|workflow!b10150"

describe("TLS", function()
  local emu

  setup(function() emu = helpers.start_emulator() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function https_key(name)
    return emu:service_key(name or "full", { tls = true })
  end

  describe("server verification", function()
    it("is on by default: the emulator's own CA is not trusted without cafile", function()
      local wf = assert(sapwf.new{ service_key = https_key() })
      assert.matches("^sapwf client %(https://[^)]+%)$", tostring(wf))
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("tls", err.kind)
      assert.equal("token", err.phase)
      assert.equal("not_sent", err.outcome)
      assert.is_false(err.retryable)              -- a certificate does not heal by waiting
      assert.is_nil(err.attempts)
      assert.equal(0, emu:stats().token_requests)
    end)

    it("a wrong CA: kind tls, with a hint that names cafile", function()
      local wf = assert(sapwf.new{ service_key = https_key(), cafile = emu.wrong_ca_file })
      local _, err = wf:start("simple")
      assert.equal("tls", err.kind)
      assert.matches("(check cafile / the CA)", err.message, 1, true)
      assert.matches("check cafile", tostring(err), 1, true)
      assert.matches("not trusted: install ca-certificates, or pass cafile", err.hint, 1, true)
      assert.matches("fix: the server's certificate", tostring(err), 1, true)
      assert.equal(0, emu:stats().token_requests)
      assert.equal(0, emu:stats().instances_started)
    end)

    it("a cafile that is not there: config, from new; one that holds no PEM: kind tls",
       function()
      local wf, err = sapwf.new{ service_key = https_key(), cafile = "/nonexistent/ca.pem" }
      assert.is_nil(wf)
      assert.equal("config", err.kind)
      assert.equal("cafile cannot be read: /nonexistent/ca.pem: No such file or directory",
                   err.message)
      local dir = helpers.temp_dir()
      helpers.write_file(dir .. "/ca.pem", "not a certificate\n")
      wf = assert(sapwf.new{ service_key = https_key(), cafile = dir .. "/ca.pem" })
      _, err = wf:definitions()
      assert.equal("tls", err.kind)
      assert.matches("cafile", err.message, 1, true)
      assert.matches("cannot be read as PEM certificates", err.hint, 1, true)
      os.execute("rm -rf '" .. dir .. "'")
    end)

    it("cafile works, for the token and the API", function()
      local wf = assert(sapwf.new{ service_key = https_key(), cafile = emu.ca_file })
      assert(wf:start("simple"))
      assert.equal(1, emu:stats().token_requests)
      assert.equal(1, emu:stats().instances_started)
    end)

    it("verify = false is never silent: tostring says so", function()
      local wf = assert(sapwf.new{ service_key = https_key(), verify = false })
      assert(wf:definitions())
      assert.matches("%[TLS verification OFF%]$", tostring(wf))
      local on = assert(sapwf.new{ service_key = https_key(), verify = true,
                                   cafile = emu.ca_file })
      assert.is_nil(tostring(on):find("OFF", 1, true))
      -- only a boolean turns it off: no string, number or environment variable does
      for _, value in ipairs({ "false", 0, "no" }) do
        assert.has_error(function() sapwf.new{ service_key = https_key(), verify = value } end)
      end
    end)

    it("the environment cannot turn it off", function()
      local key_file = os.tmpname()
      local f = assert(io.open(key_file, "w"))
      f:write(require("cjson").encode(https_key()))
      f:close()
      local script = os.tmpname()
      f = assert(io.open(script, "w"))
      f:write([[
        package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
        package.cpath = "./build/lua5.4/?.so;" .. package.cpath
        local wf = assert(require("sapwf").new{ service_key = arg[1], retries = 0 })
        local _, err = wf:definitions()
        io.write(tostring(err and err.kind))
      ]])
      f:close()
      local pipe = assert(io.popen("env CURL_INSECURE=1 CURLOPT_SSL_VERIFYPEER=0 "
        .. "GIT_SSL_NO_VERIFY=1 NODE_TLS_REJECT_UNAUTHORIZED=0 PYTHONHTTPSVERIFY=0 "
        .. "SSL_CERT_FILE=/dev/null lua5.4 " .. script .. " " .. key_file .. " 2>&1"))
      local out = pipe:read("*a")
      pipe:close()
      os.remove(key_file)
      os.remove(script)
      assert.equal("tls", out)
    end)
  end)

  describe("x509 keys", function()
    local function x509_client(extra)
      local opts = { service_key = https_key("x509"), cafile = emu.ca_file, retries = 0 }
      for k, v in pairs(extra or {}) do opts[k] = v end
      return assert(sapwf.new(opts))
    end

    it("get a token over mutual TLS and call the API", function()
      local wf = x509_client()
      local token, left, scope = wf:token()
      assert.is_string(token)
      assert.is_true(left > 0)
      assert.matches("WORKFLOW_INSTANCE_START", scope, 1, true)
      assert(wf:start("simple"))
      local stats = emu:stats()
      assert.equal(1, stats.token_requests_by_client[X509_ID])
      assert.equal(1, stats.tokens_issued)
      assert.equal(1, stats.instances_started)
    end)

    it("work with the PEM text written with literal \\n, as some tools print keys", function()
      local key = https_key("x509")
      key.uaa.certificate = key.uaa.certificate:gsub("\n", "\\n")
      key.uaa.key = key.uaa.key:gsub("\n", "\\n")
      assert.is_nil(key.uaa.key:find("\n", 1, true))
      local wf = assert(sapwf.new{ service_key = key, cafile = emu.ca_file })
      assert(wf:definitions())
      assert.equal(1, emu:stats().token_requests_by_client[X509_ID])
    end)

    it("are refused without the client certificate", function()
      local key = https_key("x509")
      local wf = assert(sapwf.new{ api_url = key.endpoints.workflow_rest_url,
        token_url = key.uaa.certurl .. "/oauth/token", client_id = key.uaa.clientid,
        client_secret = "no certificate", cafile = emu.ca_file, retries = 0 })
      local list, err = wf:definitions()
      assert.is_nil(list)
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.equal("token", err.phase)
      assert.equal(0, emu:stats().tokens_issued)
      assert.equal(0, emu:stats().api_requests)
    end)

    it("are refused with a certificate of another CA", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert.is_true(R.run("mkdir -p " .. dir .. " && cd " .. dir .. " && openssl req "
        .. "-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -keyout "
        .. "k.pem -out c.pem -subj '/CN=" .. X509_ID .. "' >/dev/null 2>&1"))
      local function read(name)
        local f = assert(io.open(dir .. "/" .. name))
        local text = f:read("*a")
        f:close()
        return text
      end
      local wf = x509_client{ cert = read("c.pem"), key = read("k.pem") }
      R.run("rm -rf " .. dir)
      local token, err = wf:token()
      assert.is_nil(token)
      assert.is_true(err.kind == "auth" or err.kind == "tls", tostring(err))
      assert.equal(0, emu:stats().tokens_issued)
    end)

    it("a key that does not belong to the certificate: kind tls, check cert / key", function()
      local f = assert(io.open((emu.ca_file:gsub("ca%.pem$", "server.key")), "rb"))
      local other_key = f:read("*a")
      f:close()
      local wf = x509_client{ key = other_key }
      local token, err = wf:token()
      assert.is_nil(token)
      assert.equal("tls", err.kind)
      assert.matches("check cert / key", err.message, 1, true)
      assert.matches("certificate and key", err.hint, 1, true)
      assert.equal(0, emu:stats().tokens_issued)
    end)

    it("the mTLS listener gives nothing but tokens", function()
      local key = https_key("x509")
      local wf = x509_client{ api_url = key.uaa.certurl .. "/workflow-service/rest" }
      local _, err = wf:definitions()
      assert.equal("not_found", err.kind)
      assert.equal(0, emu:stats().api_requests)
    end)
  end)
end)
