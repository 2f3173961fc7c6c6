-- `sapwf start [DEFINITION] --from FILE`: one workflow instance per input line.
--
-- Input lines are a context (started with DEFINITION) or {"definitionId":..,"context":..}
-- with optional "attachments":{..} (the failed file's "line", "error" and "outcome"
-- ignored, so it can be fed back; any other field makes the line bad). Three outputs:
--   record file  what became of each line sent, written and flushed as it happens (format
--                in docs/CLI.md): before a line is sent, {"line":n,"outcome":"sending",..};
--                when its answer came, {"line":n,"id":..} (started), {"line":n,"outcome":
--                "unknown",..} (it may exist) or {"line":n,"outcome":"failed"} (it does not).
--                A line whose sending entry has no answer after it (kill -9, a crash, a
--                power cut) may have started: --resume never sends it again and reports it
--                with how to look for its instance, as an unknown one. So after any end of
--                the process the record lists exactly what started or may have started.
--                A sending entry carries the line's fingerprint, and a line read and not
--                sent (blank, bad) gets an entry with its own: --resume, which knows lines
--                by number, refuses an input whose lines are not those (changed_line).
--                Records of the format before the sending entries (ids and unknown ones
--                only) are read as before.
--   failed file  the lines that did not start, in the input format plus "line" and "error";
--                a start whose outcome is unknown carries "outcome":"unknown" and is never
--                started again from that file until the user removes that field.
--   summary      JSON on stdout, one line on stderr.
--
-- No file is truncated or deleted while it may hold the only record of something: the
-- record file is only appended to; a failed file left by an earlier run is moved aside
-- (renamed, never overwritten); the run removes only the failed file it made itself when
-- it stayed empty. Every write, flush and close is checked: when the record cannot be
-- written the run stops before starting anything more, and says which instance it started
-- but could not record. The input file cannot be named as the record or failed file. One
-- run at a time per record and per failed file: the run holds a lock on each from before
-- it reads or moves it until it ends (lock_record, take_failed).
--
-- The lines stream through wf:start_each: one line is read when a start slot frees up, and
-- nothing of a line is kept once its result is written, so memory stays flat however long
-- the input is (only --resume's set of recorded line numbers grows with the record file).
--
-- Ctrl-C: the interpreters answer SIGINT with a hook that raises "interrupted!" at the next
-- call or return. That could land just after a start returned, losing the id of an instance
-- that exists (LuaJIT's hook is even global, reaching into coroutines); SIGTERM and SIGHUP
-- end the process outright, losing the starts in flight. So during a run the three only
-- set a flag (signals.lua), which is read before each line is taken:
-- then no more lines are taken, and the starts in flight complete and are recorded before
-- the run ends. A start that waits to be sent again (a 429's Retry-After, the batch's rate
-- limit) stops waiting and is not sent: it is recorded as failed, and --resume sends it.
-- A second signal ends the process at once.
local json = require "sapwf.json"
local errors = require "sapwf.errors"
local core = require "sapwf.core"
local signals = require "sapwf.cli.signals"
local file_id = core.file_id
local exitcodes = require "sapwf.cli.exitcodes"
local input_text = require "sapwf.cli.input"
local is_object, not_sendable = input_text.is_object, input_text.not_sendable
local progress = require "sapwf.cli.progress"
local output = require "sapwf.cli.output"
local cli = require "sapwf.cli"

local M = {}

local DEFAULT_CONCURRENCY = 4
local MAX_LINE_MESSAGES = 10      -- per-line messages on stderr; the rest are in the file

-- Errors after which every further start would fail the same way: stop instead.
local FATAL_KINDS = { auth = true, forbidden = true, config = true, tls = true }

-- Fields of the wrapped line form that are not part of the start.
local META_FIELDS = { line = true, error = true, outcome = true }

-- An error in one line, in the words of the command line's other errors (a long hint is
-- printed below, by cli.write_hints), without the "sapwf: " they start with.
local function describe(err)
  return output.bare(cli.describe_error(err))
end

local function usage(message)
  return nil, { kind = "usage", message = message }
end

-- The kinds of file the record and failed files may be: a file, a device (/dev/null,
-- /dev/full: written to, never moved aside or removed) or a pipe (--failed /dev/stdout).
local WRITABLE_KINDS = { file = true, ["character device"] = true, fifo = true }

-- What a path names: its kind ("file", "directory", ...) and a file's size; false when
-- nothing has that name; or nil and a usage error naming the file. A file that cannot be
-- examined (a folder that may not be searched, a link loop) is not taken for one that is
-- not there: it may be a record of starts, and a run that thought it absent would start
-- its lines again.
local function examine(what, path)
  local kind, size, missing = core.file_kind(path)
  if kind then
    return kind, size
  elseif missing then
    return false
  end
  return usage(string.format("cannot examine %s %s: %s", what, path, tostring(size)))
end

-- The size of a regular file, or nil (none, a device, a pipe, or it cannot be examined).
local function file_size(path)
  local kind, size = core.file_kind(path)
  return kind == "file" and size or nil
end


local function io_error(message)
  return { kind = "io", message = message }
end

-- Writes one line and flushes it: true, or nil and the system's reason. Interpreted, since
-- LuaJIT's compiled calls can lose the failure (output.interpreted).
local put_line = output.interpreted(function(file, text)
  local ok, err = file:write(text .. "\n")     -- one piece: a failed write cuts one line
  if ok then
    ok, err = file:flush()
  end
  return ok, err
end)

local function is_line_number(v)
  return type(v) == "number" and v >= 1 and v == math.floor(v)
end

local ENOENT = 2      -- io.open's third result when nothing has the name

-- What recorded_lines reads: `lines` and `prints` (below), and `started`, the set of the
-- prints of the lines in `lines`: such a text must not start again (changed_line).
local function new_record(lines, prints)
  local started = {}
  for line in pairs(lines) do
    if prints[line] then started[prints[line]] = true end
  end
  return { lines = lines, prints = prints, started = started }
end

-- What an earlier run recorded (for --resume): `lines`, line number -> true (started) or the
-- entry of a start with an unknown outcome (entry.pending: its answer never came), and
-- `prints`, line number -> the fingerprint of the text last sent or read for it (sending
-- entries carry one, and so do those of lines read and not sent, Run:passed), as
-- new_record makes it. Or nil and a usage error for a record with a line that cannot be
-- read where no sending entry came before it: written by the format without them, such a
-- line may be the only record of a started instance, and --resume would start it again.
-- After a sending entry, a line cut short by a failed write costs nothing: every line sent
-- has its sending entry, complete, before it is sent, so a lost answer only leaves that
-- line's outcome unknown.
local function recorded_lines(path)
  local done, pending, prints = {}, {}, {}
  local file, open_err, code = io.open(path, "rb")
  if not file then
    -- Only a record that is not there lists nothing. One that cannot be read (no read
    -- permission) may list every line: taken for empty, each would start again.
    if code == ENOENT then
      return new_record(done, prints)
    end
    return usage(string.format("--resume: cannot read the record file %s: %s", path,
      input_text.system_reason(open_err, path)))
  end
  if not file:seek("cur") then
    file:close()
    return usage(string.format("--resume: the record file %s is not a regular file: it "
      .. "cannot be read back", path))
  end
  local number, write_ahead = 0, false
  while true do
    -- read, not lines(): lines() raises for a read error, which would end the run as an
    -- internal error instead of saying which file failed
    local text, read_err = file:read("*l")
    if text == nil then
      file:close()
      if read_err then
        return usage(string.format("--resume: cannot read the record file %s: %s", path,
          tostring(read_err)))
      end
      break
    end
    number = number + 1
    local entry = text:find("%S") and json.decode(text)
    if type(entry) == "table" and is_line_number(entry.line) then
      local line = entry.line
      -- the text this line had when it was sent, or read and not sent (Run:passed); only
      -- versions that write sending entries ahead write fingerprints
      if type(entry.fingerprint) == "string" then
        prints[line] = entry.fingerprint
        write_ahead = true
      end
      if entry.outcome == "sending" then
        write_ahead = true
        if done[line] == nil then pending[line] = entry end
      elseif entry.outcome == "failed" then
        pending[line] = nil                             -- answered: not started
      elseif entry.outcome == "blank" then              -- read, nothing to send
      elseif entry.outcome == "unknown" then
        pending[line] = nil
        if done[line] == nil then done[line] = entry end
      else
        pending[line] = nil                             -- an id (or anything else: started)
        done[line] = true
      end
    elseif text:find("%S") and not write_ahead then
      file:close()
      return usage(string.format("the record file %s cannot be read at its line %d (a write "
        .. "cut short?): it may have recorded a start, so --resume would not know whether "
        .. "to send it again. Find out what it recorded (the lines before and after it, "
        .. "`sapwf instances`), fix or delete that line, then run again with --resume",
        path, number))
    end
  end
  for line, entry in pairs(pending) do
    entry.pending = true
    done[line] = entry
  end
  return new_record(done, prints)
end

-- Whether line `number` of the input, `text`, is not the line the record speaks of, so that
-- --resume would skip it or start it by mistake: a line the record lists as started (or
-- maybe started) must be the same text; one it lists as failed may have been fixed in
-- place (the report advises that), but must not be the text of a started one moved there
-- (a line deleted above it). Lines read and not sent (blank, bad, of unknown outcome) are
-- recorded with their fingerprint too (Run:passed), so that deleting one of them cannot
-- move a started line onto a number the record knows nothing of. record: recorded_lines's;
-- now: the line's fingerprint.
local function changed_line(record, number, now)
  local known = record.prints[number]
  if known == nil or now == known then return false end
  return record.lines[number] ~= nil or record.started[now] == true
end

-- The error of a changed_line.
local function changed_input(number, input_path, record_path)
  return { kind = "usage", message = string.format("--resume: line %d of %s is not the line "
    .. "the record %s holds for it (the input changed since that run?): --resume would skip "
    .. "or start the wrong lines. Put back the input that run read; for a new input give a "
    .. "--record of its own (a new record starts every line of the input it is given)",
    number, input_path, record_path) }
end

-- The next line of input each call, nil at its end. A signal (Ctrl-C, SIGTERM, SIGHUP)
-- during a read that waits (a pipe, a terminal) makes it fail with EINTR, where lines()
-- would raise: then nil too, and the run sees the signal. Other read errors raise.
local EINTR = 4

local function line_reader(input)
  return function()
    while true do
      local text, err, code = input:read("*l")
      if text or not err then return text end
      if code ~= EINTR then error(err, 0) end
      if core.sigint_caught() then return nil end
    end
  end
end

-- Whether a non-empty file ends in the middle of a line (a write cut short): the next
-- entry must then start on a line of its own. One whose end cannot be read is taken to:
-- a blank line in the record costs nothing, an entry glued onto a partial one is lost.
local function ends_mid_line(path)
  local size = file_size(path)
  if not size or size == 0 then
    return false
  end
  local file = io.open(path, "rb")
  if not file then
    return true
  end
  local last = file:seek("set", size - 1) and file:read(1)
  file:close()
  return last ~= "\n"
end

-- The input's line `number` as the run reads it: without a first line's byte order mark
-- (editors on Windows put one at the start of a file; it is not part of the JSON).
local function line_text(text, number)
  if number == 1 then
    return input_text.without_bom(text)
  end
  return text
end

-- The non-blank lines of a seekable input, how many of them an earlier run recorded, and
-- the first that is not the line the record speaks of (changed_line), or nil. Reads the
-- open file and puts it back where it was, so the run reads the same lines.
local function count_lines(file, record)
  local count, recorded, number, changed = 0, 0, 0, nil
  local start = file:seek("cur")
  for text in file:lines() do
    number = number + 1
    text = line_text(text, number)
    if text:find("%S") then
      count = count + 1
      if record.lines[number] == true then   -- started; an unknown one counts as unknown
        recorded = recorded + 1
      end
    end
    if not changed and record.prints[number] ~= nil
        and changed_line(record, number, core.fingerprint((text:gsub("\r$", "")))) then
      changed = number
    end
  end
  assert(file:seek("set", start))
  return count, recorded, changed
end

-- UTC time in the form the API's startedFrom / startedUpTo filters take.
local function utc_now()
  return os.date("!%Y-%m-%dT%H:%M:%S.000Z")
end

-- How to look for the instance of a start with an unknown outcome.
local function lookup_advice(entry)
  local command = "sapwf instances --definition-id " .. tostring(entry.definitionId)
  if entry.from and entry.to then
    -- the API compares at millisecond precision: the window covers whole seconds
    command = string.format("%s --started-from %s --started-up-to %s", command, entry.from,
      (entry.to:gsub("%.000Z$", ".999Z")))
  elseif entry.from then
    -- a start whose answer never came: when it ended is not known
    command = string.format("%s --started-from %s", command, entry.from)
  end
  return string.format("look for it before starting it again: %s (add --business-key when "
    .. "the definition derives one from the context)", command)
end

-- Fields of the wrapped form beside definitionId and context.
local ITEM_FIELDS = { attachments = true }

-- One input line: an item {line, definitionId, context, attachments}, or nil and why it
-- cannot start.
-- item.unknown is set for a line an earlier run reported with an unknown outcome.
function M.parse_line(text, number, default_definition)
  local value, err = json.decode(text)
  if value == nil then
    return nil, "not valid JSON: " .. tostring(err)
  end
  if not is_object(value) then
    return nil, "not a JSON object"
  end
  local item = { line = number }
  -- wf:start_each raises for an empty definitionId (after the line's sending entry): it is
  -- a bad line here, before anything is recorded or sent.
  if value.definitionId == "" and type(value.context) == "table" then
    return nil, "has an empty definitionId"
  end
  -- A definitionId with no context object could be either form: {"definitionId":"x"} is
  -- meant as a start of x (start_many takes it so), yet with a DEFINITION it would be that
  -- definition's context. Neither guess is safe: the line says what to write instead.
  if type(value.definitionId) == "string" and type(value.context) ~= "table" then
    return nil, string.format("has a definitionId but no context object: write "
      .. "{\"definitionId\":%s,\"context\":{}} to start it with an empty context, or wrap a "
      .. "context that has a definitionId in {\"definitionId\":..,\"context\":..}",
      json.encode(value.definitionId))
  end
  if type(value.definitionId) == "string" then
    for key in pairs(value) do
      if key ~= "definitionId" and key ~= "context" and not META_FIELDS[key]
          and not ITEM_FIELDS[key] then
        return nil, string.format("has field '%s' beside definitionId and context "
          .. "(wrap a context that has both in {\"definitionId\":..,\"context\":..})", key)
      end
    end
    if not is_object(value.context) then
      return nil, "has a context that is not a JSON object"
    end
    if value.attachments ~= nil and not is_object(value.attachments) then
      return nil, "has attachments that are not a JSON object"
    end
    item.definitionId, item.context = value.definitionId, value.context
    item.attachments = value.attachments
    item.unknown = value.outcome == "unknown"
  else
    if not default_definition then
      return nil, "names no definitionId, and the command gives no DEFINITION"
    end
    item.definitionId, item.context = default_definition, value
  end
  -- What would fail only once sent (a number beyond a double, a string that is not UTF-8)
  -- is a bad line: kept verbatim in the failed file, as no entry could hold it.
  local why = not_sendable(item.definitionId, "definitionId")
    or not_sendable(item.context, "context")
    or item.attachments ~= nil and not_sendable(item.attachments, "attachments")
  if why then return nil, "cannot be sent: " .. why end
  return item
end

-- The options of the run's wf:start_each.
function M.start_options(concurrency)
  return { concurrency = concurrency or DEFAULT_CONCURRENCY }
end

local function error_fields(err)
  if type(err) ~= "table" then
    return { kind = "other", message = tostring(err) }
  end
  return {
    kind = err.kind, status = err.status, message = err.message, code = err.code,
    log_id = err.log_id, request_id = err.request_id,
  }
end

-- The failed file's entry for a line that parsed: the line again, as --from reads it, with
-- why it failed (error) and, when it may have started, outcome "unknown" (--from skips it).
local function failed_entry(item, error, outcome)
  return { definitionId = item.definitionId, context = item.context,
           attachments = item.attachments, line = item.line,
           error = error, outcome = outcome }
end

local Run = {}
Run.__index = Run

function Run:say(fmt, ...)
  if self.bar.enabled and self.bar.drawn_at then
    self.out.stderr:write("\r\27[K")
  end
  self.out:message(fmt, ...)
  if self.bar.enabled then
    self.bar.drawn_at = nil     -- redraw on the next update
  end
end

-- Says something about one line; true when it was said (the first MAX_LINE_MESSAGES are).
function Run:line_message(number, fmt, ...)
  self.messages = self.messages + 1
  if self.messages <= MAX_LINE_MESSAGES then
    self:say("line %d: " .. fmt, number, ...)
    return true
  elseif self.messages == MAX_LINE_MESSAGES + 1 then
    self:say("more failed lines: see %s", self.failed_path)
  end
  return false
end

-- Stops the run: nothing more is started (work() returns after the current item).
function Run:stop_writing(err)
  if not self.aborted then
    self.aborted = err
  end
end

function Run:write_failed(text)
  local ok, err = put_line(self.failed_file, text)
  if not ok then
    self:stop_writing(io_error(string.format("cannot write the failed file %s: %s",
      self.failed_path, tostring(err))))
  end
end

-- Appends an entry to the record file; on failure says what is not recorded and stops.
-- what: what became of the line, or nil for its sending entry (then the line is not sent).
-- Returns true when the entry was written.
function Run:write_record(entry, what)
  local text = json.encode(entry)
  -- After a write cut short, the next entry starts a line of its own: glued onto the
  -- partial one it could not be read, and its line would look unanswered.
  if self.record_mid_line then
    text = "\n" .. text
  end
  local ok, err = put_line(self.record_file, text)
  if ok then
    self.record_mid_line = false
    return true
  end
  self.record_mid_line = true
  if what then
    self:say("line %d: %s, but the record file cannot be written (%s)", entry.line, what,
      tostring(err))
  else
    self:say("line %d: not sent: the record file cannot be written (%s)", entry.line,
      tostring(err))
  end
  self:stop_writing(io_error(string.format("cannot write the record file %s: %s",
    self.record_path, tostring(err))))
  return false
end

-- A line read and not sent (outcome "blank", or "failed": bad, or of unknown outcome
-- already) goes to the record with its fingerprint, once (changed_line).
function Run:passed(number, outcome, fp)
  if self.record.prints[number] ~= fp then
    self:write_record({ line = number, outcome = outcome, fingerprint = fp }, "read, not sent")
  end
end

function Run:bad_line(number, text, why)
  self.failed = self.failed + 1
  self.invalid = self.invalid + 1
  -- Verbatim, so the user can fix it in the failed file and feed that back.
  self:write_failed(text)
  self:line_message(number, "%s", why)
end

-- A line the record file lists with an unknown outcome: never started again by --resume.
-- It goes to the failed file as this run's unknown starts do, marked unknown: deleting the
-- mark there, once the lookup found no instance, is how it is started again.
function Run:unknown_recorded(number, entry, text)
  self.failed = self.failed + 1
  self.unknown = self.unknown + 1
  self.unknown_lines = self.unknown_lines + 1
  -- The record names the definition it was sent with: a --resume without DEFINITION still
  -- gets the line marked, which fed back later would otherwise start again.
  local definition = self.definition
  if definition == nil and type(entry.definitionId) == "string" then
    definition = entry.definitionId
  end
  local item = M.parse_line(text, number, definition)
  if item then
    self:write_failed(json.encode(failed_entry(item, { message = entry.pending
      and "an earlier run sent it and recorded no answer"
      or "an earlier start's outcome is unknown" }, "unknown")))
  else
    self:write_failed(text)
  end
  if entry.pending then
    self:line_message(number, "an earlier run sent its start but recorded no answer (it "
      .. "ended, or could not write the record), so it may have started and is not started "
      .. "again; %s", lookup_advice(entry))
  else
    self:line_message(number, "an earlier start has an unknown outcome, so it is not started "
      .. "again; %s", lookup_advice(entry))
  end
end

function Run:unknown_again(item, text)
  self.failed = self.failed + 1
  self.unknown = self.unknown + 1
  self.unknown_lines = self.unknown_lines + 1
  self:write_failed(text)
  self:line_message(item.line, "an earlier start of this line has an unknown outcome: look "
    .. "the instance up; delete the \"outcome\" field to start it again")
end

-- The id of a start's result when it is a new instance, else nil.
local function instance_id(result)
  if type(result) ~= "table" or errors.is_error(result) then return nil end
  local id = result.id
  if type(id) == "string" and id ~= "" then return id end
  return nil
end

-- A result that is neither an instance with an id nor an error: the library answers a
-- start with one or the other (base.call refuses any other 201), but this is where the
-- run's accounting is kept, and a raise here would lose it (and the lines after it). The
-- service said the start went through, so it counts as an unknown outcome, never as failed
-- (which --resume would start again).
local function not_an_instance(result)
  local got = type(result) == "table" and "a table without an id string"
    or result == json.null and "JSON null" or type(result)
  return errors.new{ kind = "decode", method = "POST", path = "/v1/workflow-instances",
    message = "the start's result is " .. got .. ", not the new instance; the workflow may "
      .. "have started; look it up before retrying",
    retryable = false, outcome = "unknown" }
end

-- result: the new instance, or the error object of a start that failed.
function Run:result(item, result)
  self.attempted = self.attempted + 1
  local id = instance_id(result)
  if id then
    self.started = self.started + 1
    self:write_record({ line = item.line, id = id }, "started instance " .. id)
    return
  end
  local err = errors.is_error(result) and result or not_an_instance(result)
  self.failed = self.failed + 1
  local entry = failed_entry(item, error_fields(err))
  if type(err) == "table" and err.outcome == "unknown" then
    entry.outcome = "unknown"
    self.unknown = self.unknown + 1
    -- The record file is where --resume looks: it must know this line may have started.
    local unknown = { line = item.line, outcome = "unknown", definitionId = item.definitionId,
                      from = item.from, to = utc_now() }
    self:write_record(unknown, "the outcome of its start is unknown")
    self:line_message(item.line, "%s; %s", describe(err), lookup_advice(unknown))
  else
    -- Answered: the line did not start, and --resume may send it again.
    self.restartable = self.restartable + 1
    self:write_record({ line = item.line, outcome = "failed" }, "it failed")
    local said
    if type(err) == "table" and err.interrupted then
      -- The signal ended its wait to be sent (again): the user's stop, said as such.
      local _, signal = core.sigint_caught()
      if err.kind == "interrupted" then                -- held by the limiter: never sent
        said = self:line_message(item.line, "interrupted (%s) before it was sent: not started",
          tostring(signal))
      else
        said = self:line_message(item.line, "interrupted (%s) before it was sent again: not "
          .. "started (%s)", tostring(signal), describe(err))
      end
    else
      said = self:line_message(item.line, "%s", describe(err))
    end
    -- The hints of an error that stops the run follow the summary; another's follow its
    -- line, once for each hint.
    if said and type(err) == "table" and not FATAL_KINDS[err.kind] and err.hint
        and not self.hints_shown[err.hint] then
      self.hints_shown[err.hint] = true
      cli.write_hints(self.out, err, self.args)
    end
  end
  -- The line's content encodes (parse_line made sure); the error's text may not (a
  -- service's message that is not UTF-8): then the entry keeps the content and says so.
  local text, encode_err = json.encode(entry)
  if not text then
    entry.error = { kind = entry.error.kind, status = entry.error.status,
                    message = "(the error's text is not JSON: " .. tostring(encode_err) .. ")" }
    text = json.encode(entry) or json.encode({ line = item.line, error = entry.error })
  end
  self:write_failed(text)
  if type(err) == "table" and FATAL_KINDS[err.kind] then
    self.aborted = err
  end
end

-- Shows progress.
function Run:tick()
  self.bar:update(self.attempted + self.invalid + self.unknown_lines, self.failed)
end

-- Whether to take no more lines: the run stopped, or Ctrl-C came.
function Run:stopping()
  if self.aborted then
    return true
  end
  local caught, name = core.sigint_caught()
  if caught then
    self.interrupted, self.signal = true, name
    return true
  end
  return false
end

-- The next line to start, as {line, definitionId, context}; the lines before it that are
-- not started (blank, recorded, bad, of unknown outcome) are dealt with on the way. nil at
-- the end of the input, when the run stops, or (probe) after the first line to start.
function Run:next_line()
  if self.probe_taken then
    return nil
  end
  while not self:stopping() do
    local text = self.lines()
    if text == nil then
      if self:stopping() then                     -- a signal ended the read: not the end
        return nil
      end
      self.exhausted = true
      return nil
    end
    local number = self.number + 1
    self.number = number
    text = line_text(text, number):gsub("\r$", "")
    local fp, skip = core.fingerprint(text), self.record.lines
    if changed_line(self.record, number, fp) then
      -- read from a pipe: not seen before the run began (count_lines); no line from here
      self.aborted = changed_input(number, self.input_path, self.record_path)
      return nil
    end
    if not text:find("%S") then
      if not skip[number] then               -- (blank now where a start was recorded:
        self:passed(number, "blank", fp)          -- an old record, without fingerprints)
      end
    elseif not skip[number] then
      local item, why = M.parse_line(text, number, self.definition)
      if not item then
        self:bad_line(number, text, why)
        self:passed(number, "failed", fp)
        self:tick()
      elseif item.unknown then
        self:unknown_again(item, text)
        self:passed(number, "failed", fp)
        self:tick()
      else
        if self.probing then
          self.probe_taken = true
        end
        item.from = utc_now()
        item.fingerprint = fp
        return item
      end
    else
      local entry = skip[number]
      if type(entry) == "table" then
        self:unknown_recorded(number, entry, text)
      else
        self.resumed = self.resumed + 1
      end
    end
  end
  return nil
end

-- Starts lines with one wf:start_each at `concurrency`: each result is recorded as it comes.
function Run:stream(concurrency)
  local in_flight = {}      -- start index -> its line's item, until its result is recorded
  local opts = M.start_options(concurrency)
  self.wf:start_each(function()
    local item = self:next_line()
    if item == nil then
      return nil
    end
    -- Recorded before it is sent: whatever ends the process from here on, --resume knows
    -- this line may have started. Not recorded, not sent.
    if not self:write_record({ line = item.line, outcome = "sending",
                               definitionId = item.definitionId, from = item.from,
                               fingerprint = item.fingerprint }) then
      return nil
    end
    self.taken = self.taken + 1
    in_flight[self.taken] = item
    return { definitionId = item.definitionId, context = item.context,
             attachments = item.attachments }
  end, function(i, result)
    local item = in_flight[i]
    in_flight[i] = nil
    self:result(item, result)
    self:tick()
  end, opts)
end

-- The run: the first line to start goes alone, so that a client that may not start
-- instances (403, bad credentials) stops the run before concurrent starts try more lines;
-- then the rest stream at the run's concurrency.
function Run:work()
  self.probing = true
  self.taken = 0
  self:stream(1)
  self.probing, self.probe_taken = false, false
  if not self.exhausted and not self:stopping() then
    self.taken = 0
    self:stream(self.concurrency)
  end
end

function Run:summary(interrupted)
  local summary = {
    input = self.input_path,
    total = self.total,
    started = self.started,
    failed = self.failed,
    invalidLines = self.invalid,
    outcomeUnknown = self.unknown,
    skippedAsRecorded = self.recorded or self.resumed,
    interrupted = interrupted,
    record = self.record_path,
    failedFile = self.failed > 0 and self.failed_path or json.null,
    seconds = math.floor(self.bar:elapsed() * 1000 + 0.5) / 1000,
  }
  if self.total then
    -- Every non-blank line was recorded by an earlier run, attempted, bad, passed on as
    -- unknown, or not attempted (interrupted or stopped).
    summary.notAttempted = math.max(self.total - self.recorded - self.attempted - self.invalid
      - self.unknown_lines, 0)
  end
  if self.aborted then
    summary.aborted = describe(self.aborted)
  end
  return summary
end

-- The summary (JSON on stdout, a line on stderr) and the exit code.
function Run:report(ctx, interrupted)
  local summary = self:summary(interrupted)
  -- Standard output that cannot take the summary still leaves the line and hints below on
  -- stderr, and the run's own exit code when it has one (10, 130, ...): the records are
  -- whole, and a plain 1 would hide that lines failed.
  local written, out_err = pcall(function()
    ctx.out:result(summary)
    ctx.out:flush()
  end)
  if not written and not (type(out_err) == "table" and out_err.kind == "io") then
    error(out_err, 0)
  end
  local to_start = self.total and self.total - self.recorded
  local text = string.format("started %d of %s line%s", self.started,
    to_start and tostring(to_start) or "?", to_start == 1 and "" or "s")
  local stopped = interrupted or self.aborted
  if self.failed > 0 then
    -- After a stop the failed file lacks the lines not attempted, and --resume would start
    -- its lines as well: advising both could start a line twice, so only --resume is named.
    text = text .. string.format(", %d failed (%s%s)", self.failed, self.failed_path,
      stopped and "" or "; feed it back with --from")
  end
  if self.unknown > 0 then
    text = text .. string.format(", %d with an unknown outcome (look them up before "
      .. "starting them again)", self.unknown)
  end
  if stopped then
    local not_attempted = summary.notAttempted
    local why = interrupted
      and "interrupted" .. (self.signal and " (" .. self.signal .. ")" or "")
      or "stopped: " .. summary.aborted
    text = string.format("%s, %s line%s not attempted; %s", text,
      tostring(not_attempted or "?"), not_attempted == 1 and "" or "s", why)
    if file_size(self.record_path) then
      text = string.format("%s; %sthe same command with --resume: it %s", text,
        interrupted and "run " or "once that is fixed, run ",
        self.restartable > 0 and "starts the failed lines and those not attempted"
          or "starts those not attempted")
    else
      -- a device or a pipe: nothing to read back, so no --resume to advise
      text = text .. "; the record is no file that --resume could read back"
    end
  end
  ctx.out:message("%s; record: %s", text, self.record_path)
  if self.aborted then
    -- The same hints as the error of a single start: the cf command that grants a missing
    -- authority, what to check for a refused client.
    cli.write_hints(ctx.out, self.aborted, self.args, file_size(self.record_path) ~= nil)
  end

  local code = exitcodes.codes.ok
  if interrupted then
    code = exitcodes.codes.interrupted
  elseif self.aborted then
    code = exitcodes.for_error(self.aborted)
  elseif self.failed > 0 or self.unknown > 0 then
    code = exitcodes.codes.partial
  end
  if not written then
    cli.report_error(ctx.out, out_err)
    if code == exitcodes.codes.ok then code = exitcodes.for_error(out_err) end
  end
  return code
end

-- Opens the input once: a pipe, /dev/stdin or <(...) can be read only once, so the run
-- reads its lines from this handle and nothing else opens the path. Returns the file and
-- whether it can be read twice (a regular file: then its lines are counted first), or nil
-- and a usage error.
local function open_input(path)
  if path == "-" then
    return io.stdin, false
  end
  local file, open_err = io.open(path, "rb")
  if not file then
    return usage("--from: cannot read " .. tostring(open_err))
  end
  -- A pipe or terminal cannot seek; whatever it sends is read once, as `--from -` is.
  local seekable = file:seek("cur") ~= nil
  -- A directory opens but cannot be read; read(0) is also nil at the end of an empty
  -- file, so only an error message counts. What it reads stays in this handle's buffer.
  local _, read_err = file:read(0)
  if read_err then
    file:close()
    return usage(string.format("--from: cannot read %s: %s", path, read_err))
  end
  return file, seekable
end

local function same_file(option_a, option_b, path)
  return usage(string.format("%s and %s name the same file (%s): give each its own",
                             option_a, option_b, path))
end

-- Why a file that is not there cannot be made at path (its folder is missing, or is no
-- folder), or nil: found before anything is sent, in words that say so, not as a lock that
-- failed after the token fetch.
local function folder_problem(path)
  local folder = path:match("^(.*)/[^/]*$")
  if folder == nil then
    return nil                                -- the current folder
  end
  if folder == "" then
    folder = "/"
  end
  local kind, why, missing = core.file_kind(folder)
  if kind == "directory" then
    return nil
  elseif kind then
    return string.format("%s is a %s, not a folder", folder, kind)
  elseif missing then
    return string.format("there is no folder %s", folder)
  end
  return string.format("cannot examine its folder %s: %s", folder, tostring(why))
end

-- A record with content and no --resume: its lines would be started again.
local function record_exists(path)
  return usage(string.format("the record file %s exists: to go on with the run it records, "
    .. "add --resume (it skips the lines it lists); for another input, give another --record",
    path))
end

-- Checks the paths before anything is sent. Returns failed_path, record_path or nil, err.
-- seekable: whether the input is a file that can be read twice.
local function check_paths(args, seekable)
  local input_path = args.from
  if not seekable and (not args.failed or not args.record) then
    -- Names made from "/dev/fd/63" would not be found again, nor be writable.
    return usage(input_path == "-" and "with --from - give --failed FILE and --record FILE"
      or string.format("--from %s is not a regular file (a pipe?): give --failed FILE and "
        .. "--record FILE, or use --from -", input_path))
  end
  -- "-" is standard input for --from only: standard output carries the summary, and a
  -- file named "-" would be a surprise nobody finds again.
  for _, option in ipairs({ "failed", "record" }) do
    if args[option] == "-" then
      return usage(string.format("--%s -: give a file (standard output carries the summary)",
                                 option))
    end
  end
  local failed_path = args.failed or input_path .. ".failed.ndjson"
  local record_path = args.record or input_path .. ".started.ndjson"
  -- Two names for one file would have the run overwrite its own input or record.
  local named = { { "--from", input_path }, { "--failed", failed_path },
                  { "--record", record_path } }
  for i = 1, #named do
    for j = i + 1, #named do
      local a, b = named[i][2], named[j][2]
      local id_a, id_b = a ~= "-" and file_id(a), b ~= "-" and file_id(b)
      if a == b or (id_a and id_a == id_b) then
        return same_file(named[i][1], named[j][1], b)
      end
    end
  end
  -- Only a file, a device or a pipe takes the lines; a directory would be taken for a
  -- record that exists, or moved aside as an earlier failed file.
  local record_kind, record_size
  for _, f in ipairs({ { "--record", "the record file", record_path },
                       { "--failed", "the failed file", failed_path } }) do
    local kind, size = examine(f[2], f[3])
    if kind == nil then
      return nil, size
    end
    if kind and not WRITABLE_KINDS[kind] then
      return usage(string.format("%s %s is a %s: give a file", f[1], f[3], kind))
    end
    local problem = kind == false and folder_problem(f[3])
    if problem then
      return usage(string.format("cannot make %s %s: %s", f[2], f[3], problem))
    end
    if f[1] == "--record" then
      record_kind, record_size = kind, size
    end
  end
  if record_kind == "file" and record_size > 0 and not args.resume then
    return record_exists(record_path)
  end
  -- A --resume with no record to resume from is a --record forgotten or mistyped: taken for
  -- an empty record, it would start every line again, those the first run started too.
  if args.resume and record_kind == false then
    return usage(string.format("--resume: there is no record file %s to resume from: give "
      .. "the --record of the run to resume (without --resume a run starts every line)",
      record_path))
  end
  return failed_path, record_path
end

-- A failed file left by an earlier run may hold the only record of a line's failure:
-- it is renamed to the first free "<path>.N", never over a file that is there (not even
-- one that appears meanwhile: core.rename_noreplace). Returns the new name, nil when there
-- was nothing to keep, or nil and an error.
local function keep_earlier_failed(path)
  -- Its size by stat, not by reading: one that cannot be read is kept aside all the same.
  local size = file_size(path)
  if not size or size == 0 then
    return nil
  end
  for n = 1, 1000 do
    local kept = path .. "." .. n
    local ok, err, taken = core.rename_noreplace(path, kept)
    if ok then
      return kept
    end
    if not taken then
      return nil, io_error(string.format("cannot move the earlier failed file %s aside: %s",
        path, err))
    end
  end
  return nil, io_error("too many earlier failed files beside " .. path)
end

-- One run per failed file too: two runs given one failed file (each with its own record,
-- or both beside one input) would mix their failed lines in it, and the second would move
-- the first one's file aside while the first still writes to it, so the first's summary
-- would name a file without its lines. So the run locks it (as the record, lock_record)
-- before it looks at it: a non-empty file it then moves aside is one no run writes to, and
-- the run locks the new one it makes. Returns the lock (false for a device or a pipe), the
-- file's id when this run made it, and the name an earlier failed file was kept as; or nil
-- and an error.
local function take_failed(path)
  local kind = core.file_kind(path)
  if kind and kind ~= "file" then
    return false
  end
  -- kept: the name an earlier failed file was just moved to, which a refusal also says
  local function refused(why, kept)
    return usage(why .. (kept and ("; the failed file of an earlier run is kept as " .. kept)
      or ""))
  end
  local function in_use(kept)
    return refused(string.format("the failed file %s is in use by another run: wait for it "
      .. "to end, or give another --failed", path), kept)
  end
  local function unlockable(why, kept)
    return refused(string.format("cannot lock the failed file %s: %s", path, tostring(why)),
                   kept)
  end
  local lock, made, busy = core.lock_file(path)
  if busy then
    return in_use()
  elseif lock and made then
    return lock, file_id(path)
  elseif lock and file_size(path) == 0 then
    return lock
  end
  -- An earlier run's lines, or a file that cannot be opened for writing (not this run's
  -- either: a run writes to the one it locks): moved aside, then a new one is made.
  local kept, err = keep_earlier_failed(path)
  if lock then
    lock:close()
  end
  if err then
    return nil, err
  elseif not kept and not lock then
    return unlockable(made)
  end
  lock, made, busy = core.lock_file(path)
  if busy then
    return in_use(kept)
  elseif not lock then
    return unlockable(made, kept)
  end
  return lock, made and file_id(path), kept
end

-- Runs run:work() with Ctrl-C, SIGTERM and SIGHUP caught as a flag (see the top); true when
-- interrupted.
local function drive(run)
  local caught, name, ok, problem = signals.during(run.work, run)
  -- A signal after the last line was taken is seen by no run:stopping(), yet it may have
  -- cut a retry's wait short (that line not started): the run was interrupted all the
  -- same, as a single start is by a signal while it is on its way (exit 130).
  if caught and not run.interrupted then
    run.interrupted, run.signal = true, name
  end
  local interrupted = run.interrupted == true
  if ok then
    return interrupted
  end
  run.failed_file:close()
  run.record_file:close()
  error(problem, 0)
end

-- One run per record file at a time: two runs appending to one record, or resuming from it
-- at once, would each start the lines the other has not recorded yet. So the run holds an
-- exclusive lock (flock) on it from before it reads it until it ends; the end of the
-- process, however it comes, releases it. Returns the lock and whether taking it made the
-- file; false for a device or a pipe (no record to resume from, nothing shared); or nil and
-- a usage error: another run holds it, or it cannot be locked (a file system without
-- locks): then a second run could not be kept out, so this one does not start.
local function lock_record(path)
  local kind = core.file_kind(path)
  if kind and kind ~= "file" then
    return false
  end
  local lock, made, busy = core.lock_file(path)
  if lock then
    return lock, made
  elseif busy then
    return usage(string.format("the record file %s is in use by another run: wait for it to "
      .. "end (two runs on one record would start its lines twice), or give another --record",
      path))
  end
  return usage(string.format("cannot lock the record file %s, so another run could start its "
    .. "lines at the same time: %s", path, tostring(made)))
end

local run_locked, run_files

-- f(...)'s two results, with done(ok, f's first result or what it raised) called after it
-- however it ends; what f raised is raised again then.
local function after(done, f, ...)
  local ok, code, err = pcall(f, ...)
  done(ok, code)
  if not ok then
    error(code, 0)
  end
  return code, err
end

-- f(...) with the lock of the file at path held (false: none), then the lock released, what
-- f raised raised again. A file this run made (made_id: its id then) and then refused to
-- use or left on a raise holds nothing: it goes while it is still that file and empty, and
-- while the lock still keeps any other run from writing to it.
local function holding(lock, path, made_id, f, ...)
  return after(function(ok, code)
    if (not ok or code == nil) and made_id and file_id(path) == made_id
        and file_size(path) == 0 then
      os.remove(path)
    end
    if lock then
      lock:close()
    end
  end, f, ...)
end

-- M.run once the input is open.
local function run_input(ctx, args, input, seekable)
  local failed_path, record_path = check_paths(args, seekable)
  if not failed_path then
    return nil, record_path
  end
  local wf, err = ctx:client()
  if not wf then
    return nil, err
  end
  -- A wrong key or secret shows here, before any file is touched. The signals are caught
  -- from here on (the lines' run catches them again): Lua's own Ctrl-C would surface as a
  -- bad token answer, SIGTERM and SIGHUP would end the process without a word.
  local token, caught, signal
  token, err, caught, signal = signals.around(wf.token, wf)
  if caught then
    return nil, cli.not_sent(signal, not token and err or nil)
  end
  if not token then
    return nil, err
  end
  local lock, made = lock_record(record_path)
  if lock == nil then
    return nil, made
  end
  return holding(lock, record_path, made and file_id(record_path), run_locked, ctx, args,
                 input, seekable, wf, failed_path, record_path)
end

-- run_input once the record is locked.
function run_locked(ctx, args, input, seekable, wf, failed_path, record_path)
  local err
  -- Checked again under the lock: another run may have written it since check_paths.
  if not args.resume and (file_size(record_path) or 0) > 0 then
    return record_exists(record_path)
  end
  local record = new_record({}, {})
  if args.resume then
    record, err = recorded_lines(record_path)
    if not record then
      return nil, err
    end
  end
  local total, recorded, changed
  if seekable then
    total, recorded, changed = count_lines(input, record)
    if changed then                       -- before anything is sent
      return nil, changed_input(changed, args.from, record_path)
    end
  end
  -- Two names for a file neither of which was there (check_paths compares the files that
  -- are): the record is there now (lock_record made it), and one file for both would read
  -- back a failed line as started.
  local failed_id = file_id(failed_path)
  if failed_id and failed_id == file_id(record_path) then
    return same_file("--failed", "--record", record_path)
  end
  local lock, failed_made, kept = take_failed(failed_path)
  if lock == nil then
    return nil, failed_made
  end
  if kept then
    ctx.out:message("the failed file of an earlier run is kept as %s", kept)
  end
  return holding(lock, failed_path, failed_made, run_files, ctx, args, input, wf, failed_path,
                 record_path, failed_made, record, total, recorded)
end

-- run_locked once the failed file is locked too. failed_made: its id when this run made
-- it (it may then be removed while it is empty, and only then; holding does it when this
-- returns nil or raises).
function run_files(ctx, args, input, wf, failed_path, record_path, failed_made, record,
                   total, recorded)
  local input_path = args.from
  -- "a", not "w": nothing is truncated, not even a device.
  local failed_file, ferr = io.open(failed_path, "a")
  if not failed_file then
    return usage("--failed: " .. tostring(ferr))
  end
  local record_file, rerr = io.open(record_path, "a")
  if not record_file then
    failed_file:close()
    return usage("--record: " .. tostring(rerr))
  end

  local run = setmetatable({
    out = ctx.out, args = args, hints_shown = {},
    definition = args.definition, input_path = input_path,
    failed_path = failed_path, record_path = record_path,
    failed_file = failed_file, record_file = record_file,
    record_mid_line = ends_mid_line(record_path),
    lines = line_reader(input),
    record = record, total = total, recorded = recorded,
    wf = wf, concurrency = args.concurrency or DEFAULT_CONCURRENCY, number = 0,
    started = 0, failed = 0, invalid = 0, unknown = 0, unknown_lines = 0, attempted = 0,
    resumed = 0, messages = 0, restartable = 0,
  }, Run)
  run.bar = progress.new({ total = total and total - recorded, enabled = output.is_terminal(2) })

  local interrupted = drive(run)
  run.bar:finish()
  for _, f in ipairs({ { failed_file, failed_path }, { record_file, record_path } }) do
    local ok, cerr = f[1]:close()
    if not ok then
      run:stop_writing(io_error(string.format("cannot write %s: %s", f[2], tostring(cerr))))
    end
  end
  -- The empty file this run made holds nothing, also after a stop (the summary then says
  -- failedFile: null); it is removed only while it is still that file, and empty.
  if run.failed == 0 and failed_made and file_id(failed_path) == failed_made
      and file_size(failed_path) == 0 then
    os.remove(failed_path)
  end
  return run:report(ctx, interrupted)
end

function M.run(ctx, args)
  local input, seekable = open_input(args.from)
  if not input then
    return nil, seekable
  end
  return after(function()
    if input ~= io.stdin then
      input:close()
    end
  end, run_input, ctx, args, input, seekable)
end

return M
