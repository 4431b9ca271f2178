-- Test helpers for headless Neovim: waits, assertions, and an exit code for the runner.
local H = {}

function H.log(...)
  local parts = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    parts[i] = type(v) == 'string' and v or vim.inspect(v)
  end
  io.stderr:write(table.concat(parts, ' ') .. '\n')
end

--- Waits until `cond()` is true (processing events), or fails with `what`.
function H.wait(ms, cond, what)
  local ok = vim.wait(ms, cond, 50)
  if not ok then
    error('timed out after ' .. ms .. ' ms waiting for ' .. (what or 'a condition'), 2)
  end
end

function H.eq(a, b, what)
  if not vim.deep_equal(a, b) then
    error(string.format('%s: expected %s, got %s', what or 'values differ', vim.inspect(b), vim.inspect(a)), 2)
  end
end

function H.truthy(v, what)
  if not v then
    error(what or 'expected a true value', 2)
  end
  return v
end

--- The noctune client once initialized.
function H.client()
  local c
  H.wait(20000, function()
    c = require('noctune.client').clients()[1]
    return c ~= nil and c.initialized
  end, 'the noctune client to initialize')
  return c
end

--- `noctune <args>` with the test's environment; decoded JSON of stdout.
function H.noctune_json(args)
  local cmd = { 'noctune' }
  vim.list_extend(cmd, args)
  local out = vim.fn.system(cmd)
  if vim.v.shell_error ~= 0 then
    error('noctune ' .. table.concat(args, ' ') .. ' failed: ' .. out)
  end
  return vim.json.decode(out)
end

--- Runs the test body; exits 0 on success, 1 with a traceback on failure.
function H.run(name, body)
  local ok, err = xpcall(body, debug.traceback)
  if ok then
    H.log('PASS ' .. name)
    vim.cmd('qall!')
  else
    H.log('FAIL ' .. name .. ': ' .. tostring(err))
    local log = (vim.lsp.log and vim.lsp.log.get_filename) and vim.lsp.log.get_filename() or nil
    if log and vim.fn.filereadable(log) == 1 then
      H.log('--- lsp.log (tail) ---\n' .. table.concat(vim.list_slice(vim.fn.readfile(log), math.max(1, #vim.fn.readfile(log) - 40)), '\n'))
    end
    vim.cmd('cquit 1')
  end
end

return H
