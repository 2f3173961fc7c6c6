-- The local emulator of sapwf as a rock of its own: XSUAA's token endpoint and the Workflow
-- API v1 on nginx with its Lua module, for tests, demos and `sapwf emulator`. It is not part
-- of the library's rock: a program that uses sapwf never needs it.
--   cd emulator && luarocks make --deps-mode=none
-- spec/07-install_spec.lua checks that every file under emulator/lua/ is listed below.
rockspec_format = "3.0"
package = "sapwf-emulator"
version = "scm-1"
source = {
  url = "git+https://github.com/sapwf/sapwf.git",
  dir = "sapwf/emulator",
}
description = {
  summary = "A local SAP BTP Workflow service and XSUAA for testing sapwf (nginx + Lua)",
  detailed = [[
Starts nginx with its Lua module on free 127.0.0.1 ports (HTTP, and HTTPS with a
self-signed CA) serving XSUAA's client-credentials token endpoint and the Workflow API v1,
with clients and their authorities, expiring tokens, injected faults and a control API.
Needs, besides the rocks below, what LuaRocks cannot install: nginx, its Lua module
(Debian: nginx libnginx-mod-http-lua) and openssl (for the TLS listener).]],
  homepage = "https://github.com/sapwf/sapwf",
  license = "MIT",
  labels = { "sap", "workflow", "testing", "nginx" },
}
-- lua-cjson for the service keys it writes; argparse is not needed (sapwf's command line
-- brings its own).
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
}
build = {
  type = "builtin",
  modules = {
    ["sapwf.emulator"] = "lua/sapwf/emulator/init.lua",
    ["sapwf.emulator.certs"] = "lua/sapwf/emulator/certs.lua",
    ["sapwf.emulator.control"] = "lua/sapwf/emulator/control.lua",
    ["sapwf.emulator.defaults"] = "lua/sapwf/emulator/defaults.lua",
    ["sapwf.emulator.nginx_conf"] = "lua/sapwf/emulator/nginx_conf.lua",
    ["sapwf.emulator.server"] = "lua/sapwf/emulator/server/init.lua",
    ["sapwf.emulator.server.api.definitions"] = "lua/sapwf/emulator/server/api/definitions.lua",
    ["sapwf.emulator.server.api.forms"] = "lua/sapwf/emulator/server/api/forms.lua",
    ["sapwf.emulator.server.api.instances"] = "lua/sapwf/emulator/server/api/instances.lua",
    ["sapwf.emulator.server.api.messages"] = "lua/sapwf/emulator/server/api/messages.lua",
    ["sapwf.emulator.server.api.tasks"] = "lua/sapwf/emulator/server/api/tasks.lua",
    ["sapwf.emulator.server.api.tenant"] = "lua/sapwf/emulator/server/api/tenant.lua",
    ["sapwf.emulator.server.control"] = "lua/sapwf/emulator/server/control.lua",
    ["sapwf.emulator.server.dispatch"] = "lua/sapwf/emulator/server/dispatch.lua",
    ["sapwf.emulator.server.engine"] = "lua/sapwf/emulator/server/engine.lua",
    ["sapwf.emulator.server.faults"] = "lua/sapwf/emulator/server/faults.lua",
    ["sapwf.emulator.server.json"] = "lua/sapwf/emulator/server/json.lua",
    ["sapwf.emulator.server.limits"] = "lua/sapwf/emulator/server/limits.lua",
    ["sapwf.emulator.server.oauth"] = "lua/sapwf/emulator/server/oauth.lua",
    ["sapwf.emulator.server.operations"] = "lua/sapwf/emulator/server/operations.lua",
    ["sapwf.emulator.server.query"] = "lua/sapwf/emulator/server/query.lua",
    ["sapwf.emulator.server.respond"] = "lua/sapwf/emulator/server/respond.lua",
    ["sapwf.emulator.server.router"] = "lua/sapwf/emulator/server/router.lua",
    ["sapwf.emulator.server.seed"] = "lua/sapwf/emulator/server/seed.lua",
    ["sapwf.emulator.server.shared"] = "lua/sapwf/emulator/server/shared.lua",
    ["sapwf.emulator.server.spa"] = "lua/sapwf/emulator/server/spa.lua",
    ["sapwf.emulator.server.store"] = "lua/sapwf/emulator/server/store.lua",
    ["sapwf.emulator.server.tokens"] = "lua/sapwf/emulator/server/tokens.lua",
    ["sapwf.emulator.server.util"] = "lua/sapwf/emulator/server/util.lua",
    ["sapwf.emulator.server.views"] = "lua/sapwf/emulator/server/views.lua",
    ["sapwf.emulator.server.workflows"] = "lua/sapwf/emulator/server/workflows.lua",
    ["sapwf.emulator.service_key"] = "lua/sapwf/emulator/service_key.lua",
    ["sapwf.emulator.shell"] = "lua/sapwf/emulator/shell.lua",
  },
}
