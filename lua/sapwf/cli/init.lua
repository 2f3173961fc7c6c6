-- The sapwf command line: parse the arguments, run one command, map its outcome to an exit
-- code. bin/sapwf only calls main(arg). Each command is a handler(ctx, args) that returns
-- nothing (success), an exit code, or nil and an error object (kind, message, ...).
local parser = require "sapwf.cli.parser"
local output = require "sapwf.cli.output"
local exitcodes = require "sapwf.cli.exitcodes"
local errors = require "sapwf.errors"
local session = require "sapwf.cli.session"

local M = {}

-- The service instance's name in the cf commands the command line prints when --instance
-- does not give it (403 hints, doctor), and the line saying what to put there: one form
-- everywhere, not the library's "<instance>".
M.INSTANCE = "INSTANCE"
M.INSTANCE_HINT = M.INSTANCE .. " is the name of the Workflow service instance (`cf "
  .. "services` lists it); give it with --instance NAME and sapwf fills it in."

-- Loaded on use, so `sapwf --help` and `sapwf authorities` need no C module or network.
-- reads: a command that only reads, run with the signals caught (read_interruptibly); the
-- others that call the service catch them themselves, around what they send.
local handlers = {
  token = { "sapwf.cli.token", "run", reads = true },
  definitions = { "sapwf.cli.commands", "definitions", reads = true },
  instances = { "sapwf.cli.commands", "instances", reads = true },
  instance = { "sapwf.cli.commands", "instance", reads = true },
  context = { "sapwf.cli.commands", "context", reads = true },
  cancel = { "sapwf.cli.commands", "cancel" },
  suspend = { "sapwf.cli.commands", "suspend" },
  resume = { "sapwf.cli.commands", "resume" },
  tasks = { "sapwf.cli.commands", "tasks", reads = true },
  complete = { "sapwf.cli.commands", "complete" },
  message = { "sapwf.cli.commands", "message" },
  export = { "sapwf.cli.commands", "export" },
  start = { "sapwf.cli.commands", "start" },
  authorities = { "sapwf.cli.authorities", "run" },
  doctor = { "sapwf.cli.doctor", "run", reads = true },
  emulator = { "sapwf.cli.emulator", "run" },
}

local function is_interrupt(message)
  return type(message) == "string" and message:find("interrupted!", 1, true) ~= nil
end

-- A 403's fix in the command line's words: a new sapwf command gets a new token by itself,
-- and the service instance is named with --instance.
local CLI_HINT_STYLE = { instance = M.INSTANCE,
  renew = "then run the command again (each sapwf command gets a new token)",
  renew_already = "run the command again: it gets a new token" }
-- The same after a bulk start that stopped: run as it was, the command would refuse the
-- record file it left; with --resume it goes on (bulk.lua's summary says so too).
local RESUME_HINT_STYLE = { instance = M.INSTANCE,
  renew = "then run the same command with --resume (each sapwf command gets a new token)",
  renew_already = "run the same command with --resume: it gets a new token" }

-- The library's advice names its options and functions; the command line's names its own.
local function cli_words(text)
  return (text:gsub("; fix: see err%.hint", "; fix: see the hint below")
    :gsub("%f[%w%-]cafile", "--cafile")
    :gsub("%(wf:definitions%(%) lists them%)", "(`sapwf definitions` lists them)")
    :gsub("give api_url to pick", "put that URL in the key's endpoints.api to pick"))
end

-- err's one-line description in the command line's words: a hint too long for the line is
-- printed below it (write_hints), not named as a Lua field. Also for the bulk start's lines.
function M.describe_error(err)
  return cli_words(output.describe_error(err))
end

-- The error for a call whose retry a caught signal stopped (err.interrupted, send.lua;
-- signals.lua): the library returned the last attempt's error; the user gets what matters
-- to them, that it was not sent again and so, for a call that changes something (changes),
-- whether anything was done. A token fetch retried (phase "token") means the request itself
-- never went out.
function M.stopped_retry(signal, err, changes)
  local done = ""
  if changes then
    done = err.outcome == "unknown" and ": an earlier attempt may have taken effect"
      or ": nothing done"
  end
  return { kind = "interrupted", message = string.format("interrupted (%s) before the "
    .. "request was sent%s%s (the last attempt: %s)", signal,
    err.phase == "token" and "" or " again", done, output.bare(M.describe_error(err))) }
end

-- The error of a command that changes something when a caught signal came before its
-- request went out (during its token fetch, which the signal ends, or just after): nothing
-- was sent. err: what the fetch returned, when it failed: a wait to ask again that the
-- signal stopped is said with the last attempt's error.
function M.not_sent(signal, err)
  if type(err) == "table" and err.interrupted then
    return M.stopped_retry(signal, err, true)
  end
  return { kind = "interrupted", message = string.format("interrupted (%s) before the "
    .. "request was sent: nothing done", signal) }
end

-- Prints what to do next about err, where we know it: the "hint:" lines below its
-- description. args: the parsed arguments (for --instance), or nil. resume: the command
-- goes on with --resume (a bulk start that stopped), so the hints say to add it.
function M.write_hints(out, err, args, resume)
  if type(err) ~= "table" then
    return
  end
  local text = output.describe_error(err)
  local long_hint = text:find("; fix: see err.hint", 1, true) ~= nil
  if err.kind == "forbidden" and err.role then
    -- SAP Build Process Automation: roles, no cf command (service.lua says why).
    out.stderr:write("hint: ", cli_words(tostring(err.hint)), "\n")
    out.stderr:write("hint: `sapwf doctor` tries every read call with this key.\n")
  elseif err.kind == "forbidden" then
    if err.authority and not text:find(err.authority, 1, true) then
      out.stderr:write("sapwf: missing authority: ", err.authority, "\n")
    end
    local instance = args and args.instance_name
    if err.authority then
      out.stderr:write("hint: ", errors.forbidden_hint(instance, err.granted or {},
        err.authority, resume and RESUME_HINT_STYLE or CLI_HINT_STYLE), "\n")
      if not instance then
        out.stderr:write("hint: ", M.INSTANCE_HINT, "\n")
      end
    elseif err.hint then
      out.stderr:write("hint: ", cli_words(tostring(err.hint)), "\n")
    end
    out.stderr:write("hint: `sapwf doctor` lists every missing authority and the cf command.\n")
  elseif err.kind == "auth" and err.phase == "token" then
    out.stderr:write("hint: the token endpoint refused the client: check the client id and "
      .. "secret of the service key (was the key deleted or rotated?).\n")
  elseif err.kind == "auth" then
    -- The API (or a gateway in front of it) refused a fresh token too.
    out.stderr:write("hint: the API refused a fresh token: check that the key's API URL and "
      .. "token URL belong together; behind an API gateway, give its key with --header.\n")
  elseif err.kind == "config" and err.no_key then
    out.stderr:write("hint: `cf service-key INSTANCE KEY > key.json` saves a key (its "
      .. "\"Getting key ...\" line may stay), then --service-key key.json; see `sapwf --help`.\n")
  elseif err.kind == "usage" then
    out.stderr:write("hint: see `sapwf ", err.command or "", err.command and " " or "",
      "--help`.\n")
  elseif long_hint and err.hint then
    out.stderr:write("hint: ", cli_words(tostring(err.hint)), "\n")
  end
end

-- Prints err on stderr, with what to do next where we know it. args: the parsed arguments
-- (for --instance), or nil.
function M.report_error(out, err, args)
  local text = M.describe_error(err)
  -- The module's one-line errors already start with "sapwf: ".
  if text:sub(1, 7) ~= "sapwf: " then
    text = "sapwf: " .. text
  end
  out.stderr:write(text, "\n")
  M.write_hints(out, err, args)
  out.stderr:flush()
end

-- The command a parse error is about, for its hint: the first word of the list that is one,
-- unless the error names an option given before it (a global option, which only `sapwf
-- --help` lists); nil for none. The parser names an option as 'NAME' ("option '-o' must
-- be ..."), the converters at the start ("--timeout must be ...").
local function command_named(list, message)
  local at
  for i, word in ipairs(list) do
    if handlers[word] then
      at = i
      break
    end
  end
  for i = 1, (at or 1) - 1 do
    local name = list[i]:match("^%-%-?[%w%-]+")
    if name and (message:find("'" .. name .. "'", 1, true)
                 or message:sub(1, #name + 1) == name .. " ") then
      return nil
    end
  end
  return at and list[at]
end

-- A command that only reads, with Ctrl-C, SIGTERM and SIGHUP caught meanwhile
-- (signals.lua): the first ends its GET under way, or its wait to ask again, at once, and it
-- exits 130 saying so; what it printed before stays. (Lua's own Ctrl-C waited for either to
-- end, and SIGTERM or SIGHUP ended the process without a word.)
local function read_interruptibly(handler, ctx, args)
  local value, err, caught, signal = require("sapwf.cli.signals").around(handler, ctx, args)
  if not caught then
    return value, err
  end
  if value == nil and type(err) == "table" and err.interrupted then
    return nil, M.stopped_retry(signal, err, false)
  end
  return nil, { kind = "interrupted", message = "interrupted (" .. signal .. ")" }
end

local function argument_list(argv)
  local list = {}
  for i = 1, #(argv or {}) do
    list[i] = argv[i]
  end
  return list
end

function M.main(argv)
  local cli = parser.build()
  -- `sapwf` alone: the help, as gh and kubectl do.
  if argv == nil or argv[1] == nil then
    return parser.print(cli:get_help() .. "\n")
  end
  local list = argument_list(argv)
  local parsed, args = cli:pparse(list)
  if not parsed then
    -- In the words of every other usage error, with the help of the command it was for.
    M.report_error(output.new(), { kind = "usage", message = tostring(args),
                                   command = command_named(list, tostring(args)) })
    return exitcodes.codes.usage
  end

  local out = output.new(args.output)
  local ctx = session.new(args, out)
  local target = handlers[args.command]
  local ok, code, err = xpcall(function()
    local handler = require(target[1])[target[2]]
    if target.reads then
      return read_interruptibly(handler, ctx, args)
    end
    return handler(ctx, args)
  end, function(message)
    if is_interrupt(message) or os.getenv("SAPWF_DEBUG") == nil then
      return message
    end
    return debug.traceback(message, 2)
  end)
  ctx:close()

  if ok then
    -- The last of standard output leaves here: unchecked, a full disk would exit 0.
    ok, code, err = pcall(function() out:flush() return code, err end)
  end
  if not ok then
    if is_interrupt(code) then
      out.stderr:write("\nsapwf: interrupted\n")
      return exitcodes.codes.interrupted
    end
    if type(code) == "table" and code.kind == "io" then
      M.report_error(out, code)
      return exitcodes.for_error(code)
    end
    out.stderr:write("sapwf: internal error: ", tostring(code), "\n",
      "(set SAPWF_DEBUG=1 for a traceback; please report it)\n")
    return exitcodes.codes.other
  end
  if code == nil and err ~= nil then
    if type(err) == "table" and err.kind == "usage" then
      err.command = err.command or args.command
    end
    M.report_error(out, err, args)
    return exitcodes.for_error(err)
  end
  if type(code) == "number" and code == math.floor(code) then
    return code
  end
  return exitcodes.codes.ok
end

return M
