-- Exit codes of the sapwf command line: one per kind of failure, so scripts can tell a
-- missing authority (fix the service instance) from a network problem (try again later).
-- `sapwf --help` shows the table below; docs/CLI.md has the same rows (spec/20 holds them
-- together).

local codes = {
  ok = 0,
  other = 1,
  usage = 2,
  config = 3,
  auth = 4,
  forbidden = 5,
  not_found = 6,
  network = 7,
  server = 8,
  invalid = 9,
  partial = 10,
  interrupted = 130,
}

-- Error kinds of the sapwf module (lua/sapwf/errors.lua) to exit codes.
local by_kind = {
  usage = codes.usage,
  config = codes.config,
  auth = codes.auth,
  forbidden = codes.forbidden,
  not_found = codes.not_found,
  network = codes.network,
  timeout = codes.network,
  tls = codes.network,
  server = codes.server,
  rate_limited = codes.server,
  invalid = codes.invalid,
  conflict = codes.invalid,
  decode = codes.invalid,
  interrupted = codes.interrupted,
  io = codes.other,
}

local descriptions = {
  { codes.ok, "success (doctor: every authority needed is granted and no call failed)" },
  { codes.other, "any other error, also a file or standard output that cannot be written" },
  { codes.usage, "usage: bad arguments, unreadable or invalid --context / --from input, an "
    .. "existing record file without --resume, --resume without a record file, a record "
    .. "--resume cannot read, a record or failed file another run holds or that cannot be "
    .. "locked, --failed or --record naming the input or -, a directory, a file that cannot "
    .. "be examined, or one in a folder that is not there, an export FILE that cannot take "
    .. "it (a directory, a device, a folder that cannot be written)" },
  { codes.config, "configuration: no service key, or it cannot be read or used" },
  { codes.auth, "authentication: the token endpoint refused the client (wrong id or secret, "
    .. "invalid_client), or the API refused a fresh token (401: a gateway's key missing, an "
    .. "API URL and token URL that do not belong together)" },
  { codes.forbidden, "forbidden (403): an authority is missing (doctor: some are missing)" },
  { codes.not_found, "not found (404): no such definition, instance or task" },
  { codes.network, "network, timeout or TLS failure" },
  { codes.server, "server error (5xx) or rate limited (429)" },
  { codes.invalid, "invalid request or conflict (400, 409, 412, 422) or an answer that could "
    .. "not be read or is not what the call answers" },
  { codes.partial, "start --from: some lines failed or their outcome is unknown" },
  { codes.interrupted, "interrupted (Ctrl-C, SIGTERM or SIGHUP)" },
}

-- descriptions: the table in order, {code, text} (docs/CLI.md has the same rows, spec/20).
local M = { codes = codes, descriptions = descriptions }

-- The exit code for an error object (or nil) from the sapwf module.
function M.for_error(err)
  local kind = type(err) == "table" and err.kind or nil
  return by_kind[kind] or codes.other
end

local WIDTH = 96             -- --help's width (parser.lua: help_max_width 100)

-- The table as text, for the --help epilog.
function M.describe()
  local lines = { "Exit codes:" }
  for _, entry in ipairs(descriptions) do
    -- wrapped here, under its own text: argparse would wrap it back to the margin
    local line = string.format("  %3d ", entry[1])
    for word in entry[2]:gmatch("%S+") do
      if #line + 1 + #word > WIDTH then
        lines[#lines + 1] = line
        line = string.rep(" ", 6)
      end
      line = line .. " " .. word
    end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

return M
