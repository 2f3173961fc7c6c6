-- sapwf as a rock. `luarocks make` builds the C module with LuaRocks' own builtin rules.
-- libcurl is found by its library: Debian keeps curl/curl.h under a multiarch include
-- directory where LuaRocks does not look for headers, but the compiler finds it there.
-- Offline, or with Debian's lua-cjson, use `luarocks make --deps-mode=none`.
-- spec/07-install_spec.lua checks that every file under lua/ is listed below, and that the
-- rock installs no emulator file (those are emulator/'s own rock).
rockspec_format = "3.0"
package = "sapwf"
version = "scm-1"
source = {
  url = "git+https://github.com/sapwf/sapwf.git",
}
description = {
  summary = "SAP BTP Workflow service REST API client for Lua (libcurl + lua-cjson)",
  detailed = [[
Drives the SAP BTP Workflow service (Cloud Foundry) with technical (client-credentials)
authentication: token cache, every Workflow API v1 call, exact JSON, errors that name the
missing authority and the cf update-service fix, and a command line. The local emulator the
tests and `sapwf emulator` run is a rock of its own, sapwf-emulator (emulator/).]],
  homepage = "https://github.com/sapwf/sapwf",
  license = "MIT",
  labels = { "sap", "workflow", "btp", "oauth", "libcurl" },
}
-- Lua 5.1 (and LuaJIT), 5.2, 5.3 and 5.4: CI runs the library's and the command line's
-- specs on 5.1, LuaJIT, 5.3 and 5.4. argparse is the command line's.
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
  "argparse >= 0.6",
}
external_dependencies = {
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["sapwf.core"] = {
      -- bottom layer first, as scripts/check-layers.sh lists them
      sources = { "src/buffer.c", "src/clock.c", "src/headers.c", "src/path.c",
                  "src/exchange.c",
                  "src/share.c", "src/files.c", "src/signal.c", "src/lua_request.c",
                  "src/functions.c",
                  "src/options.c", "src/token.c",
                  "src/client.c",
                  "src/batch.c",
                  "src/core.c" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L" },
    },
    -- Used only with Debian's lua-cjson 2.1.0 (lua/sapwf/compat/cjson21.lua).
    ["sapwf.compat.json_walk"] = {
      sources = { "src/compat/json_walk.c" },
    },
    ["sapwf.compat.cjson21"] = "lua/sapwf/compat/cjson21.lua",
    ["sapwf.cli.authorities"] = "lua/sapwf/cli/authorities.lua",
    ["sapwf.cli.bulk"] = "lua/sapwf/cli/bulk.lua",
    ["sapwf.cli.commands"] = "lua/sapwf/cli/commands.lua",
    ["sapwf.cli.doctor"] = "lua/sapwf/cli/doctor.lua",
    ["sapwf.cli.emulator"] = "lua/sapwf/cli/emulator.lua",
    ["sapwf.cli.exitcodes"] = "lua/sapwf/cli/exitcodes.lua",
    ["sapwf.cli.filters"] = "lua/sapwf/cli/filters.lua",
    ["sapwf.cli"] = "lua/sapwf/cli/init.lua",
    ["sapwf.cli.input"] = "lua/sapwf/cli/input.lua",
    ["sapwf.cli.output"] = "lua/sapwf/cli/output.lua",
    ["sapwf.cli.parser"] = "lua/sapwf/cli/parser.lua",
    ["sapwf.cli.progress"] = "lua/sapwf/cli/progress.lua",
    ["sapwf.cli.session"] = "lua/sapwf/cli/session.lua",
    ["sapwf.cli.signals"] = "lua/sapwf/cli/signals.lua",
    ["sapwf.cli.token"] = "lua/sapwf/cli/token.lua",
    ["sapwf.args"] = "lua/sapwf/args.lua",
    ["sapwf.base"] = "lua/sapwf/base.lua",
    ["sapwf.batch"] = "lua/sapwf/batch.lua",
    ["sapwf.client"] = "lua/sapwf/client.lua",
    ["sapwf.definitions"] = "lua/sapwf/definitions.lua",
    ["sapwf.errors"] = "lua/sapwf/errors.lua",
    ["sapwf"] = "lua/sapwf/init.lua",
    ["sapwf.instances"] = "lua/sapwf/instances.lua",
    ["sapwf.jobs"] = "lua/sapwf/jobs.lua",
    ["sapwf.json"] = "lua/sapwf/json.lua",
    ["sapwf.limiter"] = "lua/sapwf/limiter.lua",
    ["sapwf.messages"] = "lua/sapwf/messages.lua",
    ["sapwf.ngx"] = "lua/sapwf/ngx.lua",
    ["sapwf.ngx.thread"] = "lua/sapwf/ngx/thread.lua",
    ["sapwf.ngx.token"] = "lua/sapwf/ngx/token.lua",
    ["sapwf.operations"] = "lua/sapwf/operations.lua",
    ["sapwf.options"] = "lua/sapwf/options.lua",
    ["sapwf.paging"] = "lua/sapwf/paging.lua",
    ["sapwf.query"] = "lua/sapwf/query.lua",
    ["sapwf.request"] = "lua/sapwf/request.lua",
    ["sapwf.send"] = "lua/sapwf/send.lua",
    ["sapwf.service"] = "lua/sapwf/service.lua",
    ["sapwf.servicekey"] = "lua/sapwf/servicekey.lua",
    ["sapwf.tasks"] = "lua/sapwf/tasks.lua",
  },
  install = {
    bin = { sapwf = "bin/sapwf" },
  },
}
