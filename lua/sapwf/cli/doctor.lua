-- `sapwf doctor [OPERATION...]`: why calls fail, and the exact fix.
--
-- 1. the service key: can it be read, which URLs and client it names (never the secret);
-- 2. the token endpoint: does it give a token (a wrong secret is a 401 invalid_client);
-- 3. the token's scopes: which authorities the service instance grants;
-- 4. each read-only call (lists first, then the calls on one definition, instance and task
--    those lists returned): OK, or the authority it is missing;
-- 5. the authorities the named operations (default: all) need and the token lacks, and the
--    `cf update-service` command that grants them. That command lists the authorities already
--    granted too, because the list it sets replaces the old one.
-- With a key of SAP Build Process Automation (SPA) steps 3 and 5 change: SPA grants roles,
-- not authorities, so doctor names the calls of the named operations that answered 403 and
-- the role SAP names for each, never a cf command. A list an application scope filters that
-- is empty although allowed gets a note on why.
-- Exit 0 when nothing needed is missing, 5 when something is; when it cannot tell (the key,
-- the token endpoint or a call failed otherwise than with 403, or than with a 404 for one
-- item), the first failure's code.
local core = require "sapwf.core"
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local operations = require "sapwf.operations"
local servicekey = require "sapwf.servicekey"
local service = require "sapwf.service"
local exitcodes = require "sapwf.cli.exitcodes"
local authorities = require "sapwf.cli.authorities"
local output = require "sapwf.cli.output"
local token_command = require "sapwf.cli.token"
local cli = require "sapwf.cli"

local M = {}

-- The read-only calls to try: operation name and how to call it. `needs` names the id
-- (from a list result) the call takes. `scoped`: a list the application scope filters
-- (defaultCollectionQueryFilter applies to collection GETs, never to a GET by id), so
-- that only its emptiness gets the note on scopes.
local PROBES = {
  { "definitions", function(wf) return wf:definitions({ top = 1 }) end, scoped = true },
  { "instances", function(wf) return wf:instances({ top = 1 }) end, scoped = true },
  { "tasks", function(wf) return wf:tasks({ top = 1 }) end, scoped = true },
  { "task_definitions", function(wf) return wf:task_definitions({ top = 1 }) end },
  { "forms", function(wf) return wf:forms({ top = 1 }) end },
  { "definition", function(wf, id) return wf:definition(id) end, needs = "definition" },
  { "definition_versions", function(wf, id) return wf:definition_versions(id, { top = 1 }) end,
    needs = "definition" },
  { "definition_model", function(wf, id) return wf:definition_model(id) end,
    needs = "definition" },
  { "sample_context", function(wf, id) return wf:sample_context(id) end, needs = "definition" },
  { "instance", function(wf, id) return wf:instance(id) end, needs = "instance" },
  { "context", function(wf, id) return wf:context(id) end, needs = "instance" },
  { "attributes", function(wf, id) return wf:attributes(id) end, needs = "instance" },
  { "execution_logs", function(wf, id) return wf:execution_logs(id) end, needs = "instance" },
  { "error_messages", function(wf, id) return wf:error_messages(id) end, needs = "instance" },
  { "roles", function(wf, id) return wf:roles(id) end, needs = "instance" },
  { "attachments", function(wf, id) return wf:attachments(id) end, needs = "instance" },
  { "task", function(wf, id) return wf:task(id) end, needs = "task" },
  { "task_context", function(wf, id) return wf:task_context(id) end, needs = "task" },
  { "task_attributes", function(wf, id) return wf:task_attributes(id) end, needs = "task" },
  { "task_form", function(wf, id) return wf:task_form(id) end, needs = "task" },
}

-- Which list gives the id a probe needs.
local ID_FROM = { definitions = "definition", instances = "instance", tasks = "task" }

local function sorted_keys(set)
  local list = {}
  for key in pairs(set) do
    list[#list + 1] = key
  end
  table.sort(list)
  return list
end

local function error_text(err)
  return output.bare(cli.describe_error(err))     -- in the command line's words (--cafile)
end

-- The service instance name for the cf command: --instance, else the VCAP binding's name,
-- else the command line's placeholder (cli.INSTANCE), which the table then explains; and
-- whether it is a name.
local function instance_name(ctx, source)
  if ctx.args.instance_name then
    return ctx.args.instance_name, true
  end
  if source and source.vcap then
    local _, name = ctx:binding()
    if name then
      return name, true
    end
  end
  return cli.INSTANCE, false
end

-- Step 1: what the key says, without its secret.
local function check_key(ctx, report)
  local source, err = ctx:key_source()
  if not source then
    report.key = { ok = false, error = error_text(err) }
    return nil, err
  end
  local opts
  if source.vcap then
    local credentials
    credentials, err = ctx:binding()
    if credentials then
      opts, err = servicekey.resolve(credentials)
    end
  else
    opts, err = servicekey.resolve(source.key)
  end
  if not opts then
    report.key = { ok = false, source = source.source, error = error_text(err) }
    return nil, err
  end
  -- the URLs without user info, which may hold a password (as the library's errors show them)
  local key = {
    ok = true, source = source.source, clientId = opts.client_id,
    tokenUrl = service.shown_url(opts.token_url), apiUrl = service.shown_url(opts.api_url),
    credential = opts.cert and "x509" or "secret",
    service = ctx.args.service or service.kind(opts.api_url), warnings = json.array(),
  }
  for _, field in ipairs({ "tokenUrl", "apiUrl" }) do
    if not key[field]:find("^https://") then
      key.warnings[#key.warnings + 1] = field .. " is not https:// (fine for a local emulator)"
    end
  end
  report.key = key
  return source
end

-- Step 4: one probe; records the outcome and returns the call's result, and the error of
-- a call that failed otherwise than with 403 or 404 (nil for those).
local function probe(wf, report, entry, id)
  local name, call = entry[1], entry[2]
  local op = operations.by_name[name]
  local check = { operation = name, call = operations.describe(op), authority = op.authority }
  local value, err = call(wf, id)
  if value ~= nil then
    check.result = "ok"
    if type(value) == "table" and next(value) == nil then
      check.note = "empty"
      if entry.scoped then report.empty[#report.empty + 1] = name end
    end
  elseif type(err) == "table" and err.kind == "forbidden" then
    check.result = "forbidden"
    report.forbidden[op.authority] = true
    if err.role then
      check.role = err.role
      report.roles[err.role] = true
    end
  elseif type(err) == "table" and err.kind == "not_found" and entry.needs then
    -- Past the authority check: a task without a form, a deleted instance. (A list is
    -- never missing: its 404 says the API URL is wrong, a failure like any other.)
    check.result = "ok"
    check.note = "not found"
  else
    check.result = "error"
    check.error = error_text(err)
    report.errors = report.errors + 1
    report.checks[#report.checks + 1] = check
    return nil, err
  end
  report.checks[#report.checks + 1] = check
  return value
end

-- Runs every probe; returns the error of the first call that failed otherwise (nil: none).
local function run_probes(wf, report)
  local ids, first_err = {}, nil
  for _, entry in ipairs(PROBES) do
    if core.sigint_caught() then break end     -- the command line's Ctrl-C (signals.lua)
    local list, err
    if entry.needs then
      if ids[entry.needs] then
        list, err = probe(wf, report, entry, ids[entry.needs])
      else
        local op = operations.by_name[entry[1]]
        report.checks[#report.checks + 1] = { operation = entry[1],
          call = operations.describe(op), authority = op.authority, result = "skipped",
          note = "no " .. entry.needs .. " to try it on" }
      end
    else
      list, err = probe(wf, report, entry)
      local first = type(list) == "table" and list[1]
      if type(first) == "table" and ID_FROM[entry[1]] and first.id ~= nil then
        ids[ID_FROM[entry[1]]] = tostring(first.id)
      end
    end
    first_err = first_err or err
  end
  return first_err
end

-- Step 5: needed - granted, and the command that grants them.
local function conclude(report, needed, granted, scope_known, instance)
  local granted_set = {}
  for _, authority in ipairs(granted) do
    granted_set[authority] = true
  end
  local missing = {}
  for _, authority in ipairs(needed) do
    if scope_known then
      if not granted_set[authority] then
        missing[#missing + 1] = authority
      end
    elseif report.forbidden[authority] then
      missing[#missing + 1] = authority
    end
  end
  -- A 403 for an authority the token has: a token from before the last update, or data of
  -- another application scope. Worth saying, not something to grant.
  local puzzling = {}
  for authority in pairs(report.forbidden) do
    if granted_set[authority] then
      puzzling[#puzzling + 1] = authority
    end
  end
  table.sort(puzzling)
  report.needed = json.array(needed)
  report.granted = json.array(granted)
  report.missing = json.array(missing)
  if #puzzling > 0 then
    report.forbiddenDespiteGrant = json.array(puzzling)
  end
  if #missing > 0 then
    local all = {}
    for _, authority in ipairs(granted) do
      all[authority] = true
    end
    for _, authority in ipairs(missing) do
      all[authority] = true
    end
    if not scope_known then
      -- The list replaces the instance's authorities, and the token did not say which it
      -- has: every one needed goes in (those whose calls answered are granted, and must
      -- stay); any other only the user knows, and is said to be added (commandNote), not
      -- silently dropped.
      for _, authority in ipairs(needed) do
        all[authority] = true
      end
      report.commandNote = "the token answer named no scopes, so this list has only the "
        .. "authorities needed: add any other the instance has, since the list replaces "
        .. "them all"
    end
    report.command = string.format("cf update-service %s -c '%s'", instance,
      json.encode({ authorities = json.array(sorted_keys(all)) }))
  end
  return missing
end

-- SPA: no authorities to grant; the calls that answered 403 and the roles SAP names. Only
-- the calls of the named operations (those whose authority is in needed) count, as with
-- authorities: a 403 for a call not named does not (README). Returns the calls that count;
-- report.forbidden gets every call that answered 403.
local function conclude_spa(report, needed)
  local needed_set = {}
  for _, authority in ipairs(needed) do
    needed_set[authority] = true
  end
  local all, forbidden, roles = {}, {}, {}
  for _, check in ipairs(report.checks) do
    if check.result == "forbidden" then
      all[#all + 1] = check.operation
      if needed_set[check.authority] then
        forbidden[#forbidden + 1] = check.operation
        if check.role then roles[check.role] = true end
      end
    end
  end
  report.forbidden = json.array(all)
  report.forbiddenCalls = json.array(forbidden)
  report.roles = json.array(sorted_keys(roles))
  report.needed, report.granted, report.missing = json.array(), json.array(), json.array()
  if #forbidden > 0 then
    report.explanation = "SAP Build Process Automation answers 403 both for credentials it "
      .. "does not accept and for missing access, and grants access by roles, not by cf "
      .. "update-service authorities: check that uaa and endpoints.api come from one service "
      .. "key of this subaccount's process-automation-service instance, that its client has "
      .. "the roles SAP names for these calls, and whether the environment wants an API key "
      .. "(--header)"
  end
  return forbidden
end

-- A note when lists came back empty although the calls are allowed: the application scope
-- (workflow-api.md: defaultCollectionQueryFilter; its exact effect is inferred). instance:
-- the name for the cf command, as in the command that grants authorities.
local function note_empty(report, instance)
  if #report.empty == 0 then return end
  local spa = report.key.service == service.SPA
  report.emptyNote = "empty " .. table.concat(report.empty, ", ") .. " although allowed: "
    .. (spa and "nothing is deployed or running in this client's application scope yet"
      or "nothing is deployed or running in this service instance's application scope, or "
        .. "the instance's defaultCollectionQueryFilter is \"own\", which (as we read SAP's "
        .. "one-line description of it) leaves shared ones out: cf update-service " .. instance
        .. " -c '{\"defaultCollectionQueryFilter\":\"shared\"}'")
end

local function mark(ok)
  return ok and "OK  " or "FAIL"
end

-- The report for people (--output table).
local function print_human(out, report, instance_known)
  local w = function(...) out:emit(...) end
  local key = report.key or {}
  if key.ok then
    w(mark(true), "  service key ", key.source, ": client ", key.clientId, " (", key.credential,
      ")\n      token URL ", key.tokenUrl, "\n      API URL   ", key.apiUrl, "\n")
    for _, warning in ipairs(key.warnings or {}) do
      w("      warning: ", warning, "\n")
    end
  else
    w(mark(false), "  service key: ", tostring(key.error), "\n")
    return
  end
  local token = report.token or {}
  if not token.ok then
    w(mark(false), "  token: ", tostring(token.error), "\n")
    if token.explanation then
      w("      ", token.explanation, "\n")
    end
    return
  end
  local expiry = token.expiresIn == json.null and token_command.NO_EXPIRY
    or ("expires in " .. tostring(token.expiresIn) .. " s")
  if key.service == service.SPA then
    w(mark(true), "  token: ", expiry, " (SAP Build Process Automation: access by roles)\n")
  else
    w(mark(true), "  token: ", expiry, "; ", token.scopeKnown == false
      and "the answer names no scopes (what is missing is told by the calls' 403s)"
      or (tostring(#report.granted) .. " authorities granted"), "\n")
  end
  local call_width = 0
  for _, check in ipairs(report.checks) do
    call_width = math.max(call_width, #check.call)
  end
  for _, check in ipairs(report.checks) do
    local text
    if check.result == "ok" then
      text = "OK" .. (check.note and (" (" .. check.note .. ")") or "")
    elseif check.result == "forbidden" and check.role then
      text = "403  (SAP names the role " .. check.role .. ")"
    elseif check.result == "forbidden" then
      text = "403  missing " .. check.authority
    elseif check.result == "skipped" then
      text = "--   skipped: " .. check.note
    else
      text = "ERR  " .. tostring(check.error)
    end
    w(string.format("      %-" .. call_width .. "s  %s\n", check.call, text))
  end
  -- A call that failed (401, 5xx, the network) allowed no conclusion about it: no OK
  -- verdict then, whatever the token grants.
  local failed = report.errors > 0
  if report.forbiddenCalls then
    if #report.forbiddenCalls == 0 then
      -- "needed": a 403 for a call not named may be in the lines above
      if not failed then w(mark(true), "  every call needed is allowed\n") end
    else
      w(mark(false), "  403 on ", tostring(#report.forbiddenCalls), " call",
        #report.forbiddenCalls == 1 and "" or "s", ": ",
        table.concat(report.forbiddenCalls, " "), "\n      ", report.explanation, "\n")
    end
  elseif #report.missing == 0 then
    if not failed then w(mark(true), "  every authority needed is granted\n") end
  else
    w(mark(false), "  missing ", tostring(#report.missing), " authorit",
      #report.missing == 1 and "y" or "ies", ": ", table.concat(report.missing, " "), "\n")
    w("      grant them (the list replaces the old one, so it keeps the granted ones):\n")
    w("      ", report.command, "\n")
    if report.commandNote then w("      note: ", report.commandNote, "\n") end
    w("      then new tokens carry them (`sapwf token` shows the scopes).\n")
    if not instance_known then w("      ", cli.INSTANCE_HINT, "\n") end
  end
  for _, authority in ipairs(report.forbiddenDespiteGrant or {}) do
    w("      note: 403 although the token has ", authority, " (an older token, or data of ",
      "another application scope)\n")
  end
  if report.emptyNote then
    w("      note: ", report.emptyNote, "\n")
    -- said once, after the command above if it was said there already
    if not instance_known and not report.command and report.key.service ~= service.SPA then
      w("      ", cli.INSTANCE_HINT, "\n")
    end
  end
  if failed then
    -- last, as the verdict: its exit code is the first failure's
    for _, check in ipairs(report.checks) do
      if check.result == "error" then
        w(mark(false), "  ", report.errors == 1 and "1 call failed: "
          or (tostring(report.errors) .. " calls failed, the first: "), tostring(check.error),
          "\n")
        break
      end
    end
  end
end

-- instance_known: the cf commands name the service instance (no placeholder to explain).
local function finish(ctx, report, code, instance_known)
  report.ok = code == exitcodes.codes.ok
  if ctx.out.format == "table" then
    print_human(ctx.out, report, instance_known)
  else
    ctx.out:json(report)
  end
  return code
end

function M.run(ctx, args)
  local needed, err = authorities.needed(args.operation)
  if not needed then
    return nil, err
  end
  local report = { checks = json.array(), forbidden = {}, roles = {}, empty = {}, errors = 0 }

  local source
  source, err = check_key(ctx, report)
  if not source then
    return finish(ctx, report, exitcodes.for_error(err))
  end
  local wf
  wf, err = ctx:client()
  if not wf then
    report.key.ok = false
    report.key.error = error_text(err)
    return finish(ctx, report, exitcodes.for_error(err))
  end

  local token, seconds_left, scope = wf:token()
  if not token then
    err = seconds_left
    report.token = { ok = false, error = error_text(err), kind = err.kind, code = err.code,
      status = err.status }
    if err.kind == "auth" then
      report.token.explanation = "the token endpoint refused the client id and secret "
        .. "(invalid_client): the key is wrong, was deleted, or its secret was rotated"
    end
    return finish(ctx, report, exitcodes.for_error(err))
  end
  local granted = errors.granted(scope)
  table.sort(granted)
  report.token = { ok = true, expiresIn = (token_command.expiry(seconds_left)),
    scopeKnown = scope ~= nil }

  local failure = run_probes(wf, report)
  if core.sigint_caught() then
    -- not every call was tried: a report would say authorities are granted that were not
    -- checked (cli/init.lua says it was interrupted)
    return nil, { kind = "interrupted", message = "interrupted" }
  end
  local instance, instance_known = instance_name(ctx, source)
  note_empty(report, instance)
  report.empty = nil
  local missing
  if report.key.service == service.SPA then
    missing = conclude_spa(report, needed)       -- report.forbidden: the calls that got 403
  else
    report.roles = nil
    missing = conclude(report, needed, granted, scope ~= nil, instance)
    report.forbidden = json.array(sorted_keys(report.forbidden))   -- the authorities
  end
  -- A failed call (401 of a gateway, 5xx, the network) left something unchecked: its code
  -- comes first, as when the token endpoint fails (docs/CLI.md), 403s count only after it.
  if failure then
    local code = finish(ctx, report, exitcodes.for_error(failure), instance_known)
    -- what to do about it, on stderr as any command says it (a gateway's 401: --header)
    cli.write_hints(ctx.out, failure, args)
    return code
  end
  if #missing > 0 then
    return finish(ctx, report, exitcodes.codes.forbidden, instance_known)
  end
  return finish(ctx, report, exitcodes.codes.ok, instance_known)
end

return M
