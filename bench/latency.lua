-- `make bench`, latency: a tenant that takes 50 ms to answer each start, over HTTPS with
-- HTTP/2 and over HTTPS with HTTP/1.1 (an emulator started with http2 = true, and one
-- without). With that service time, c starts in flight can do at most c / 0.05 a second:
-- "the limit". The server has a ceiling of its own (one nginx worker, its TLS and Lua), so
-- each concurrency also runs the lean load generator for the protocol at it (h2load for
-- HTTP/2, wrk for HTTP/1.1), sending the same request. Then wf:start_many and Node.js's
-- fetch at the same concurrency, and the sequential peers (Python requests) for a few
-- seconds each: they manage about 1 / 0.05 = 20 starts a second.
local format = string.format

local M = {}

local SERVICE_TIME = 0.05
local BODY = '{"definitionId":"simple","context":{"order":1}}'

function M.run(ctx, lib)
  local run = lib.new(ctx)
  local shell, quote = ctx.shell, ctx.shell.quote
  local quick = ctx.quick
  local SECONDS = quick and 2 or 5             -- each concurrent row
  local SEQUENTIAL = quick and 2 or 5          -- each sequential (Python) row
  local LEVELS = quick and { 32, 256 } or { 32, 256, 1024 }
  local body_file = run.path("body")
  shell.write_file(body_file, BODY)

  local section = { rows = {}, targets = {} }
  local by = {}                                -- by[proto][kind][c] = row

  local PROTOCOLS = {
    { id = "h2", label = "HTTP/2", http2 = true },
    { id = "h1", label = "HTTP/1.1", http2 = false },
  }
  for _, proto in ipairs(PROTOCOLS) do
    by[proto.id] = { ceiling = {}, sapwf = {}, node = {} }
    local emu, err = ctx.emulator.start{ tls = true, http2 = proto.http2,
                                         workers = ctx.workers }
    if not emu then ctx.fail("cannot start the " .. proto.label .. " emulator: "
                             .. tostring(err)) end
    local ok, problem = pcall(function()
      emu:set_limits{ service_time = SERVICE_TIME, keep_instances = false }
      local env, key = run.client_env(emu, true)
      local url = key.endpoints.workflow_rest_url .. "/v1/workflow-instances"

      local function row(kind, label, c, command)
        local before = emu:stats()
        local r = run.measured(env, command)
        local d = run.delta(emu:stats(), before)
        local rep = r.report
        local starts, seconds = rep.starts, rep.seconds
        if kind == "ceiling" and proto.http2 then
          -- h2load: "finished in 5.00s, ..." and "status codes: N 2xx, ..."
          seconds = tonumber(r.output:match("finished in ([%d.]+)s"))
          starts = tonumber(r.output:match("status codes: (%d+) 2xx"))
        elseif kind == "ceiling" then
          starts = rep.requests and rep.requests - rep.errors
        end
        if not (starts and seconds and starts > 0) then
          ctx.fail("no starts in the output of " .. label .. ":\n" .. r.output)
        end
        local x = {
          proto = proto, kind = kind, label = label, c = c, rate = starts / seconds,
          starts = starts, cpu = r.cpu / starts, rss = r.rss,
          connections = d.connections or 0, handshakes = d.tls_handshakes or 0,
          h2 = (d.http2_requests or 0) / math.max(1, d.api_requests or starts),
        }
        section.rows[#section.rows + 1] = x
        if by[proto.id][kind] then by[proto.id][kind][c] = x else by[proto.id][kind] = x end
        ctx.say("  latency  %-8s %-44s %9.0f starts/s", proto.label, label, x.rate)
        return x
      end

      for _, c in ipairs(LEVELS) do
        if proto.http2 then
          -- h2load multiplexes m streams on each of n connections; nginx allows 128 streams
          -- a connection, libcurl uses up to 100 before it opens another.
          local m = math.min(c, 128)
          -- the token reaches h2load as an argument (it reads headers from nowhere else),
          -- expanded by the shell that sourced the environment file: a local emulator's
          -- token for a client made for this run, never printed
          row("ceiling", format("h2load, %d streams (the server's ceiling)", c), c,
            format("h2load -D %d -t 1 -c %d -m %d -d %s -H 'Content-Type: application/json' "
              .. "-H 'Accept: application/json' -H \"User-Agent: $SAPWF_BENCH_USER_AGENT\" "
              .. "-H \"Authorization: Bearer $SAPWF_BENCH_TOKEN\" %s", SECONDS, c // m, m,
              quote(body_file), quote(url)))
        else
          row("ceiling", format("wrk, %d connections (the server's ceiling)", c), c,
            format("wrk -t1 -c%d -d%ds -s bench/start.lua %s", c, SECONDS, quote(url)))
        end
        -- as many items as the limit allows in SECONDS: one call, so the concurrency holds
        -- until the last wave
        row("sapwf", format("sapwf wf:start_many, concurrency %d", c), c,
          format("%s bench/sapwf_row.lua many_n %d %d", ctx.lua,
                 math.ceil(c / SERVICE_TIME * SECONDS), c))
        row("node", format("Node.js fetch, %d workers", c), c,
          format("node bench/node_fetch.mjs %d %d", SECONDS, c))
      end
      row("session", "Python requests, Session", 1,
          format("%s bench/requests_session.py %d", ctx.python, SEQUENTIAL))
      row("tutorial", "Python requests, token per start (tutorial)", 1,
          format("%s bench/requests_tutorial.py %d", ctx.python, SEQUENTIAL))
    end)
    emu:stop()
    if not ok then error(problem, 0) end
  end

  -- The table.
  local cells = {}
  for _, x in ipairs(section.rows) do
    local limit = x.c / SERVICE_TIME
    local ceiling = by[x.proto.id].ceiling[x.c]
    cells[#cells + 1] = {
      x.proto.label, x.label, format("%d", x.c), lib.thousands(x.rate),
      format("%.2f", x.rate / limit),
      ceiling and format("%.2f", x.rate / ceiling.rate) or "",
      lib.thousands(x.connections), format("%.0f%%", x.h2 * 100),
      format("%d us", math.floor(x.cpu * 1e6 + 0.5)), lib.mib(x.rss),
    }
  end
  section.table = lib.table({ "protocol", "", ">in flight", ">starts/s", ">x limit",
    ">x ceiling", ">connections", ">HTTP/2", ">CPU per start", ">peak RSS" }, cells)

  -- The targets.
  local function target(name, figure, holds)
    section.targets[#section.targets + 1] = { name = name, figure = figure, holds = holds }
  end
  for _, proto in ipairs(PROTOCOLS) do
    local b = by[proto.id]
    for _, c in ipairs({ 32, 256 }) do
      local s, ceil_row = b.sapwf[c], b.ceiling[c]
      local limit = c / SERVICE_TIME
      local against, what = limit, format("the limit %s/s", lib.thousands(limit))
      if ceil_row.rate < limit then
        against = ceil_row.rate
        what = format("the server's ceiling %s/s (below the limit %s/s, so compared to it)",
                      lib.thousands(ceil_row.rate), lib.thousands(limit))
      end
      target(format("%s: `wf:start_many` at %d >= 0.95 x concurrency / service time, up to "
        .. "the server's ceiling", proto.label, c),
        format("%s/s = %.2f x %s", lib.thousands(s.rate), s.rate / against, what),
        s.rate >= 0.95 * against)
    end
    local s256, py = b.sapwf[256], b.session
    target(format("%s: `wf:start_many` at 256 >= 100 x Python requests with a Session",
                  proto.label),
           format("%.0f x (%s/s against %.1f/s)", s256.rate / py.rate,
                  lib.thousands(s256.rate), py.rate), s256.rate >= 100 * py.rate)
    local figures, all = {}, true
    for _, c in ipairs(LEVELS) do
      local s, n = b.sapwf[c], b.node[c]
      figures[#figures + 1] = format("%d: %.2f x", c, s.rate / n.rate)
      all = all and s.rate >= n.rate
    end
    target(format("%s: `wf:start_many` not below Node.js fetch at the same concurrency",
                  proto.label), table.concat(figures, "; "), all)
  end

  -- What the table shows between the lines: how many connections each client needed, and
  -- how busy it kept the CPUs (CPU per start x starts a second), which on a machine of two
  -- CPUs shared with nginx caps what a heavy client can reach.
  section.notes = {}
  for _, proto in ipairs(PROTOCOLS) do
    local b = by[proto.id]
    local top = LEVELS[#LEVELS]
    local s, n, ceil_row = b.sapwf[top], b.node[top], b.ceiling[top]
    section.notes[#section.notes + 1] = format("%s at %d in flight: sapwf opened %s "
      .. "connection(s) (%s: %s) and kept %.2f CPUs busy; Node.js fetch opened %s and kept "
      .. "%.2f CPUs busy.", proto.label, top, lib.thousands(s.connections),
      proto.http2 and "h2load" or "wrk", lib.thousands(ceil_row.connections),
      s.cpu * s.rate, lib.thousands(n.connections), n.cpu * n.rate)
  end
  section.what = {
    format("**Latency.** Each start takes the tenant %d ms (the emulator's service_time, a "
      .. "non-blocking sleep), so c starts in flight can do at most c / %.2f a second: \"x "
      .. "limit\" divides by that. Two emulators, both HTTPS with their own CA: one offers "
      .. "HTTP/2 (ALPN), one HTTP/1.1 only. At each concurrency (%s) the server's ceiling "
      .. "comes first: h2load (HTTP/2, up to 128 streams a connection) or wrk (HTTP/1.1) "
      .. "sending sapwf's request for %d s; \"x ceiling\" divides by it. Then one "
      .. "`wf:start_many` call over as many items as the limit allows in %d s "
      .. "(bench/sapwf_row.lua many_n), and Node.js %s's built-in fetch with as many async "
      .. "workers pulling from one counter (bench/node_fetch.mjs; keep-alive; it speaks "
      .. "HTTP/1.1 only, on either emulator). Python's Session loop and the tutorial's "
      .. "token-per-start loop run %d s each. Connections and the HTTP/2 share are what "
      .. "the emulator counted during the row.",
      math.floor(SERVICE_TIME * 1000 + 0.5), SERVICE_TIME,
      table.concat((function() local t = {} for i, c in ipairs(LEVELS) do t[i] = tostring(c)
        end return t end)(), ", "), SECONDS, SECONDS, ctx.node_version or "", SEQUENTIAL),
  }
  section.by = by
  return section
end

return M
