-- Configuration that would expose a secret: key text pasted as printed, key text gone wrong
-- (never quoted: it holds the client secret), and http:// URLs that would carry the secret
-- and tokens across the network in clear text. Nothing here needs the network: a refused
-- configuration must fail before anything is sent, which the emulator's counters check.
local sapwf = require "sapwf"
local servicekey = require "sapwf.servicekey"
local helpers = require "spec.helpers"
local cjson = require "cjson"

describe("configuration safety", function()
  local emu, key, secret

  setup(function()
    emu = helpers.start_emulator()
    key = emu:service_key("full")
    secret = key.uaa.clientsecret
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function copy(t) return cjson.decode(cjson.encode(t)) end

  describe("service key text", function()
    local GETTING = "Getting key my-key for service instance my-workflow as me@example.com...\n\n"

    it("accepts what cf service-key prints, first line and all (cf 7 and 8 shapes)", function()
      for _, text in ipairs({ GETTING .. cjson.encode(key),
                              GETTING .. cjson.encode({ credentials = key }),
                              "\239\187\191" .. GETTING .. cjson.encode(key) }) do
        local wf = assert(sapwf.new{ service_key = text })
        assert.is_table((wf:definitions()))
        wf:close()
      end
      local path = os.tmpname()
      local file = assert(io.open(path, "wb"))
      file:write(GETTING .. cjson.encode(key))
      file:close()
      local opts = assert(servicekey.resolve(path))
      os.remove(path)
      assert.equal(key.uaa.clientid, opts.client_id)
    end)

    it("never quotes key text that is neither a path nor JSON", function()
      local json = cjson.encode(key)
      for _, text in ipairs({ GETTING .. json:sub(1, -2), json:sub(2), "x" .. json,
                              "clientsecret=" .. secret, GETTING .. "[" .. json .. "]" }) do
        local wf, err = sapwf.new{ service_key = text }
        assert.is_nil(wf)
        assert.equal("config", err.kind)
        assert.is_nil(tostring(err):find(secret, 1, true))
        assert.is_nil(err.message:find(secret, 1, true))
      end
    end)
  end)

  describe("http:// URLs", function()
    local function with_urls(api_url, token_url)
      local k = copy(key)
      if api_url then k.endpoints.workflow_rest_url = api_url end
      if token_url then k.uaa.url = token_url end
      return k
    end

    local REMOTE = { "http://sapwf-test.invalid", "HTTP://sapwf-test.invalid",
      "http://127.0.0.1.sapwf-test.invalid", "http://localhost@sapwf-test.invalid",
      "http://u:p@127.0.0.1", "http://localhost.", "http://[::2]:80", "http://10.1.2.3",
      "http://127.0.0.300", "http://127.0.0.1:80@sapwf-test.invalid" }

    it("refuses one beyond this machine, for the token and the API URL, before sending", function()
      for _, url in ipairs(REMOTE) do
        for _, which in ipairs({ "api_url", "token_url" }) do
          local k = which == "api_url" and with_urls(url .. "/rest") or with_urls(nil, url)
          local wf, err = sapwf.new{ service_key = k }
          assert.is_nil(wf, url)
          assert.equal("config", err.kind)
          assert.matches(which .. " is http:// to ", err.message)
          assert.matches("allow_http = true", err.message)
          assert.is_nil(err.message:find("u:p", 1, true))
          -- sapwf.ngx checks its options with the same function
          local opts, nerr = require("sapwf.options").core({ service_key = k })
          assert.is_nil(opts)
          assert.equal("config", nerr.kind)
        end
      end
      assert.equal(0, emu:stats().token_requests)
    end)

    it("takes loopback (the emulator), https, and any URL with allow_http = true", function()
      for _, url in ipairs({ "http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:1",
                             "http://127.1.2.3", "https://sapwf-test.invalid" }) do
        local wf = assert(sapwf.new{ service_key = with_urls(url .. "/rest", url) })
        wf:close()
      end
      for _, url in ipairs(REMOTE) do
        local wf = assert(sapwf.new{ service_key = with_urls(url .. "/rest", url),
                                     allow_http = true })
        wf:close()
      end
      local ok, msg = pcall(sapwf.new, { service_key = key, allow_http = "yes" })
      assert.is_false(ok)
      assert.matches("bad option 'allow_http' %(boolean expected, got string%)", msg)
    end)

    it("refuses a scheme libcurl does not send, or none, as a config error, not a network " ..
       "one retried on every call", function()
      for url, said in pairs({ ["htps://sapwf-test.invalid"] = "its scheme is htps://",
                               ["ftp://sapwf-test.invalid"] = "its scheme is ftp://",
                               ["sapwf-test.invalid"] = "it has no scheme" }) do
        for _, which in ipairs({ "api_url", "token_url" }) do
          local k = which == "api_url" and with_urls(url .. "/rest") or with_urls(nil, url)
          local wf, err = sapwf.new{ service_key = k, allow_http = true }
          assert.is_nil(wf, url)
          assert.equal("config", err.kind)
          assert.equal(which .. " is not an https:// URL: " .. said, err.message)
        end
      end
      assert.equal(0, emu:stats().token_requests)
    end)

    it("shows no user info (it may hold a password) in tostring or an error", function()
      local wf = assert(sapwf.new{ service_key = key, retries = 0, allow_http = true,
        api_url = "http://gw:gw-pass-4711@127.0.0.1:1/rest" })
      assert.equal("sapwf client (http://127.0.0.1:1/rest)", tostring(wf))
      local _, err = wf:definitions()
      assert.equal("network", err.kind)
      assert.equal("http://127.0.0.1:1/rest", err.api_url)
      assert.is_nil(tostring(err):find("gw-pass-4711", 1, true))
      wf:close()
    end)
  end)
end)
