-- emu:service_key(client, opts): a workflow service key for a client of the emulator, shaped
-- like `cf service-key` output (workflow-api.md section 5), as a table. In SPA mode the key
-- of a process-automation-service instance: endpoints.api (the gateway; the API is under
-- <api>/public/workflow/rest) and uaa, no workflow_rest_url (workflow-api.md section 9; the
-- layout is [inferred] from one third-party document).
local shell = require "sapwf.emulator.shell"
local defaults = require "sapwf.emulator.defaults"

local type, pairs, error, format = type, pairs, error, string.format
local match, gsub = string.match, string.gsub

--- client: "full", "limited", "x509" or any client id. opts.tls: the https URLs.
return function(self, client_name, opts)
  if type(client_name) ~= "string" then
    error(format("bad argument #1 to 'service_key' (string expected, got %s)",
      type(client_name)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #2 to 'service_key' (table expected, got %s)", type(opts)), 2)
  end
  local tls = opts and opts.tls
  if tls and not self.tls then error("the emulator was started without tls", 2) end
  local clients = self:clients()
  local client = clients[client_name]
  if not client then
    for _, candidate in pairs(clients) do
      if candidate.name == client_name then client = candidate end
    end
  end
  if not client then error("unknown emulator client '" .. client_name .. "'", 2) end

  local base = tls and self.https_url or self.url
  local identityzone = self.spa and defaults.spa.subdomain or defaults.identityzone
  local uaa = {
    apiurl = base, clientid = client.clientid, identityzone = identityzone,
    identityzoneid = defaults.zoneid, sburl = base, subaccountid = defaults.zoneid,
    tenantid = defaults.zoneid, tenantmode = "dedicated", uaadomain = match(base, "//(.*)$"),
    url = base, xsappname = (gsub(client.clientid, "^sb%-", "")), zoneid = defaults.zoneid,
    verificationkey = "-----BEGIN PUBLIC KEY-----\nsapwf-emulator-tokens-are-not-RSA-signed\n"
      .. "-----END PUBLIC KEY-----",
  }
  if client.certificate_only then
    if not self.tls then error("the x509 client needs an emulator started with tls", 2) end
    uaa["credential-type"] = "x509"
    uaa.certificate = shell.read_file(self.client_cert_file)
    uaa.key = shell.read_file(self.client_key_file)
    uaa.certurl = self.mtls_url
  else
    uaa["credential-type"] = "binding-secret"
    uaa.clientsecret = client.clientsecret
  end
  if self.spa then
    return { endpoints = { api = base }, uaa = uaa }
  end
  return {
    content_endpoint = base .. "/workflow-deploy/rest/internal/v1",
    endpoints = {
      workflow_odata_url = base .. "/workflow-service/odata",
      workflow_rest_url = base .. "/workflow-service/rest",
    },
    ["html5-apps-repo"] = { app_host_id = "00000000-0000-4000-8000-000000000000" },
    saasregistryappname = "workflow",
    ["sap.cloud.service"] = "com.sap.bpm.workflow",
    uaa = uaa,
  }
end
