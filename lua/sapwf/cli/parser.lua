-- The argument parser of the sapwf command line (lua-argparse): every command, option and
-- help text. The handlers live in the other files of this folder; init.lua dispatches.
local argparse = require "argparse"
local exitcodes = require "sapwf.cli.exitcodes"
local filters = require "sapwf.cli.filters"
local unreadable = require("sapwf.options").unreadable

local M = {}

-- Converters for argparse: each refuses what the library or the service would refuse, so
-- that a bad value is a usage error (exit 2) naming its argument before anything is read or
-- sent, never the library's raise (an internal error) or the service's 400. Every message
-- reads "NAME must be ..., got 'TEXT'" (or "NAME is empty").

-- A bound as written on the command line: 2147483, not 2.14748e+06.
local function bound(n)
  return string.format("%.15g", n)
end

-- A number from low to high; integer: a fraction is a mistake, not something to round.
-- Also the limits of the types behind it: an integer beyond them (99999999999999999999)
-- would go out as a float form, 1e+20, and a huge timeout is beyond what libcurl can wait.
local function number_between(name, low, high, integer)
  local what = integer and "an integer" or "a number"
  return function(text)
    local n = tonumber(text)
    if not n or not (n >= low and n <= high) or (integer and n % 1 ~= 0) then
      return nil, string.format("%s must be %s from %s to %s, got '%s'", name, what,
                                bound(low), bound(high), text)
    end
    return integer and math.floor(n) or n
  end
end

local function integer_between(name, low, high)
  return number_between(name, low, high, true)
end

-- A value the library refuses when empty (a definition id in a body, a decision, the
-- export's file), or a file name that would fail only later, once something was done.
local function non_empty(name)
  return function(text)
    if text == "" then
      return nil, name .. " is empty"
    end
    return text
  end
end

-- A file the command reads (--cafile): a usage error when it cannot be read, before a key
-- is read or anything is sent, not a TLS error later (or none at all over http).
local function readable(name)
  return function(text)
    if text == "" then
      return nil, name .. " is empty"
    end
    local problem = unreadable(text)
    if problem then
      return nil, name .. " " .. problem
    end
    return text
  end
end

-- A --header line, "Name: value", as { name, value }: its shape is checked with the other
-- arguments, before a key is read. The message names the option, never the value: it is
-- often an API key. (The library checks the name and the value themselves.)
local function header_line(text)
  local name, value = text:match("^%s*([^:%s]+)%s*:[ \t]*(.-)%s*$")
  if not name then
    return nil, "--header: Name: value expected (a header name, a colon, its value)"
  end
  return { name, value }
end

-- An id that becomes a path segment: what the library refuses (base.id_problem) is a usage
-- error here. A script's empty "$ID" lands here.
local function resource_id(name)
  return function(text)
    local problem = require("sapwf.base").id_problem(text)
    if problem == "empty" then
      return nil, name .. " is empty"
    elseif problem then
      return nil, string.format("%s must be an id, got '%s' (a dot segment: it would name "
        .. "another resource)", name, text)
    end
    return text
  end
end

-- The longest time sapwf.core waits (its SAPWF_MAX_SECONDS), and the least a timeout in
-- libcurl's milliseconds can be.
local MAX_SECONDS = 2147483
local MIN_SECONDS = 0.001
-- The emulator's token bucket takes a rate above 0 and below 1e9 (server/limits.lua).
local MIN_RATE, MAX_RATE = 0.001, 999999999

local CONTEXT_HELP = "The context: JSON text, @FILE to read it from a file, or - for stdin."

local EPILOG = [[
Service key: --service-key FILE, else $SAPWF_SERVICE_KEY (a file, or the key's JSON text),
else the workflow (or process-automation-service) binding in $VCAP_SERVICES (--instance
picks one by name). Results go to stdout (JSON when piped, a table on a terminal; see
--output), messages to stderr.

Examples:
  sapwf doctor                                  why do I get 403? what to grant?
  sapwf token                                   expiry and scopes of the token
  sapwf start orders --context @order.json      start one instance
  sapwf start orders --from orders.ndjson       start one instance per line
  sapwf instances --status ERRONEOUS --all      every erroneous instance
  sapwf authorities start instances context     the authorities these need

]] .. exitcodes.describe() .. "\n\nMore: https://github.com/sapwf/sapwf/blob/main/docs/CLI.md"

-- order_example: an $orderby the command's list takes (each list has its own fields).
local function add_paging(command, order_example, all_help)
  -- the API's ranges (SAP's definition; query.lua raises for any other top or skip)
  command:option("--top", "At most this many items (0 to 1000)."):argname("N")
    :convert(integer_between("--top", 0, 1000))
  command:option("--skip", "Skip this many items first (0 to 4000)."):argname("N")
    :convert(integer_between("--skip", 0, 4000))
  command:option("--orderby", "Sort order, e.g. '" .. order_example .. "'."):argname("ORDER")
  if all_help then
    command:flag("--all", all_help)
  end
end

local function add_global_options(parser)
  parser:option("--service-key", "Service key file (default $SAPWF_SERVICE_KEY, then VCAP_SERVICES).")
    :argname("FILE"):convert(non_empty("--service-key")):target("service_key")
  parser:option("--instance", "Service instance name: picks the binding in VCAP_SERVICES; "
      .. "named in the cf commands that doctor prints."):argname("NAME")
    :convert(non_empty("--instance")):target("instance_name")
  parser:option("-o --output", "Output format: json, ndjson (one item per line; with --all "
      .. "written page by page) or table (default: table on a terminal, json otherwise).")
    :choices({ "json", "ndjson", "table" }):argname("FORMAT"):target("output")
  parser:flag("--allow-http", "Allow http:// token and API URLs beyond this machine (secrets "
    .. "then cross the network in clear text).")
  parser:option("--cafile", "CA certificates (PEM) to verify the servers with."):argname("FILE")
    :convert(readable("--cafile")):target("cafile")
  parser:option("-H --header", "An extra header for every API call, 'Name: value' (an API "
      .. "key of a gateway in front of the service); repeatable. Never printed.")
    :argname("HEADER"):count("*"):convert(header_line):target("headers")
  parser:option("--service", "Which service the API URL belongs to, for the words of errors "
      .. "and doctor: workflow or process-automation (SAP Build Process Automation); default: "
      .. "told from the URL."):choices({ "workflow", "process-automation" }):argname("KIND")
    :target("service")
  parser:option("--timeout", "Seconds a whole request may take (default 60)."):argname("SECONDS")
    :convert(number_between("--timeout", MIN_SECONDS, MAX_SECONDS)):target("timeout")
end

local function add_instance_commands(parser)
  local instances = parser:command("instances", "List workflow instances.")
  filters.add(instances, "instances", non_empty)
  add_paging(instances, "startedAt desc", "Every matching instance, page after page (--top sets the page size).")

  local instance = parser:command("instance", "Show one workflow instance.")
  instance:argument("id", "Instance id."):convert(resource_id("ID"))
  instance:flag("--attributes", "Include the custom attributes.")

  parser:command("context", "Show the context of a workflow instance."):argument("id", "Instance id.")
    :convert(resource_id("ID"))

  for _, entry in ipairs({ { "cancel", "Cancel a workflow instance." },
                           { "suspend", "Suspend a workflow instance." },
                           { "resume", "Resume (or retry) a suspended or erroneous instance." } }) do
    parser:command(entry[1], entry[2] .. " The status changes asynchronously.")
      :argument("id", "Instance id."):convert(resource_id("ID"))
  end
end

local function add_task_commands(parser)
  local tasks = parser:command("tasks", "List user task instances.")
  filters.add(tasks, "tasks", non_empty)
  add_paging(tasks, "createdAt desc", "Every matching task, page after page (--top sets the page size).")

  local complete = parser:command("complete", "Complete a user task.")
  complete:argument("task", "Task instance id."):convert(resource_id("TASK"))
  complete:option("--context", CONTEXT_HELP .. " Default {}."):argname("JSON")
  complete:option("--decision", "The button pressed on an SAP Build Process Automation "
    .. "approval form: its id (e.g. approve), as the task's form model lists them."):argname("ID")
    :convert(non_empty("--decision"))
end

local function add_start_command(parser)
  local start = parser:command("start",
    "Start a workflow instance, or one per line of an NDJSON file (--from).")
  start:argument("definition", "Definition id (optional with --from when every line names it).")
    :args("?"):convert(non_empty("DEFINITION"))
  start:mutex(
    start:option("--context", CONTEXT_HELP .. " Default {}."):argname("JSON"),
    start:option("--from", "Bulk: one context per line, or "
        .. "{\"definitionId\":..,\"context\":..} with optional \"attachments\":{..}; - reads "
        .. "stdin."):argname("FILE")
      :convert(non_empty("--from"))
  )
  start:option("--attachments", "The instance's attachments, bound at the start "
      .. "({\"rootFolder\":..,\"groups\":{..}}, SAP's AttachmentsContext): JSON text, @FILE "
      .. "or - for stdin."):argname("JSON")
  start:option("--concurrency", "Bulk: starts in flight at once (default 4).")
    :argname("N"):convert(integer_between("--concurrency", 1,
                                          require("sapwf.batch").MAX_CONCURRENCY))
  start:option("--failed", "Bulk: where failed lines go, in the input format "
      .. "(default <input>.failed.ndjson)."):argname("FILE"):convert(non_empty("--failed"))
  start:option("--record", "Bulk: what became of each line sent ({\"line\":n,\"id\":..} when "
      .. "it started), written as it happens (default <input>.started.ndjson)."):argname("FILE")
    :convert(non_empty("--record"))
  start:flag("--resume", "Bulk: go on from the record file, appending to it: skip the lines it "
      .. "shows started, report those whose outcome is unknown (never sent again), start the "
      .. "others.")
end

local function add_message_command(parser)
  local message = parser:command("message",
    "Send a message to the instances waiting for it (an intermediate message event).")
  message:option("--name", "The message name (definitionId of the message)."):argname("NAME")
    :count(1):convert(non_empty("--name"))
  message:option("--instance-id", "The instance to send it to."):argname("ID")
    :convert(non_empty("--instance-id"))
  message:option("--definition-id", "With --business-key: the instances of this workflow "
      .. "definition..."):argname("ID"):convert(non_empty("--definition-id"))
  message:option("--business-key", "...with this business key."):argname("KEY")
    :convert(non_empty("--business-key"))
  message:option("--context", CONTEXT_HELP):argname("JSON")
end

-- Writes text to standard output: exit code 0 once all of it went out, else 1 with the
-- error on stderr. A full disk must not exit 0 with a help text or a completion script cut
-- short; argparse's own help, `help` and `completion` actions print without a check.
function M.print(text)
  local ok, err = io.stdout:write(text)
  if ok then ok, err = io.stdout:flush() end
  if ok then return exitcodes.codes.ok end
  io.stderr:write("sapwf: cannot write to standard output: ", tostring(err), "\n")
  return exitcodes.codes.other
end

-- As argparse's actions end: the output, then the exit, here checked.
local function print_and_exit(text)
  os.exit(M.print(text), true)
end

-- What argparse makes for --help, `help` and `completion`, with our checked output. Also:
-- argparse's help command answers a name it does not know with its own "Error:" format and
-- exit 1, where every other bad argument is a usage error (exit 2, init.lua's format); a
-- converter on its argument makes the unknown name a parse error like the others before
-- the action runs. argparse has no public way to reach those actions, that argument or the
-- command names: this reads its fields, as its own help action does, and fails loudly
-- (spec/20) if they change.
local function own_help_actions(parser)
  local help, complete
  for _, command in ipairs(parser._commands) do
    if command._is_help_command then help = command end
    if command._name == "completion" then complete = command end
  end
  assert(help and help._arguments[1], "argparse: no help command argument")
  assert(complete and complete._arguments[1], "argparse: no completion command argument")
  local function command_named(name)
    for _, command in ipairs(parser._commands) do
      for _, alias in ipairs(command._aliases) do
        if alias == name then return command end
      end
    end
  end
  help._arguments[1]:convert(function(name)
    if command_named(name) then return name end
    return nil, string.format("unknown command '%s'", name)
  end)
  help._arguments[1]:action(function(_, _, name)
    print_and_exit((name and command_named(name) or parser):get_help() .. "\n")
  end)
  complete._arguments[1]:action(function(_, _, shell)
    print_and_exit(parser["get_" .. shell .. "_complete"](parser))
  end)
  local commands = { parser }
  for _, command in ipairs(parser._commands) do commands[#commands + 1] = command end
  for _, command in ipairs(commands) do
    local flag = command._help_option_idx and command._options[command._help_option_idx]
    assert(flag, "argparse: no help option")
    flag:action(function()
      print_and_exit(command:get_help() .. "\n")
    end)
  end
end

function M.build()
  local parser = argparse("sapwf",
      "Command line for the SAP BTP Workflow service (Cloud Foundry): tokens, definitions, "
      .. "instances, tasks, messages, bulk starts, and a doctor for 403s.")
    :epilog(EPILOG)
    :command_target("command")
    :help_max_width(100)
    :help_description_margin(28)
  parser:flag("--version", "Print sapwf's version and exit.")
    :action(function()
      print_and_exit("sapwf " .. require("sapwf.core").version .. "\n")
    end)
  add_global_options(parser)

  local token = parser:command("token", "Show the access token's expiry and scopes.")
  token:flag("--raw", "Print the token itself (a secret: keep it out of logs).")

  local definitions = parser:command("definitions", "List workflow definitions (latest versions).")
  add_paging(definitions, "name asc")

  add_instance_commands(parser)
  add_start_command(parser)
  add_task_commands(parser)
  add_message_command(parser)

  parser:command("export", "Write the tenant's data export (a zip archive) to a file, as it "
      .. "comes; the file is replaced only when the whole export came.")
    :argument("file", "Where the zip goes (default: export.zip)."):args("?")
    :convert(non_empty("FILE"))

  parser:command("authorities",
      "Print {\"authorities\":[...]} for `cf update-service INSTANCE -c`: what the named "
      .. "operations need (all operations when none is named).")
    :argument("operation", "Operation names, e.g. start instances context."):args("*")

  parser:command("doctor",
      "Check the service key, the token and each read-only call; tell which authorities are "
      .. "missing and the cf command that grants them.")
    :argument("operation", "The operations you need (default: all)."):args("*")

  local emulator = parser:command("emulator",
    "Run the local emulator in the foreground and print a service key for it.")
  emulator:option("--key", "Which key: full (every authority), limited or x509.")
    :choices({ "full", "limited", "x509" }):default("full"):argname("KIND")
  emulator:option("--key-file", "Write the key to this file instead of stdout."):argname("PATH")
    :convert(non_empty("--key-file"))
  emulator:flag("--tls", "Give https URLs in the key (then pass the printed --cafile); "
    .. "implied by --key x509.")
  emulator:flag("--spa", "Emulate SAP Build Process Automation: an SPA service key "
    .. "(endpoints.api), the API under /public/workflow/rest, SPA definition ids.")
  emulator:option("--service-time", "Answer each API request after this many seconds, as a "
    .. "busy tenant does."):argname("SECONDS")
    :convert(number_between("--service-time", 0, 3600)):target("service_time")
  emulator:option("--rate", "The tenant's usage limit: at most N API requests a second "
    .. "(a burst of N), beyond it 429 with Retry-After."):argname("N")
    :convert(number_between("--rate", MIN_RATE, MAX_RATE))

  -- `sapwf help [COMMAND]` and `sapwf completion bash|zsh|fish`, as argparse makes them
  -- from the same definitions as --help (so they cannot drift apart).
  parser:add_help_command()
  parser:add_complete_command()
  own_help_actions(parser)
  return parser
end

return M
