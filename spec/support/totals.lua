-- busted output handler: the usual report (gtest style by default, one line per test, so a
-- CI log names every test), followed by one plain totals line as its very last line:
--   N passed, N failed[, N skipped]
-- Errors count as failed; pending tests are reported as skipped, never as passed.
-- Choose the inner report with SAPWF_SPEC_OUTPUT (gtest, plainTerminal, utfTerminal, TAP).
return function(options)
  local busted = require "busted"
  local inner_name = os.getenv("SAPWF_SPEC_OUTPUT") or "gtest"
  local handler = require("busted.outputHandlers." .. inner_name)(options)

  local function totals()
    local passed = handler.successesCount
    local failed = handler.failuresCount + handler.errorsCount
    local line = string.format("%d passed, %d failed", passed, failed)
    if handler.pendingsCount > 0 then
      line = line .. string.format(", %d skipped", handler.pendingsCount)
    end
    io.write(line, "\n")
    io.flush()
    return nil, true
  end

  -- Subscribed after the inner handler, so it runs after the inner summary.
  busted.subscribe({ "suite", "end" }, totals)
  return handler
end
