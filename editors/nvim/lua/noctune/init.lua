-- Noctune Studio for Neovim: chat, chat-driven edits and run approvals through `noctune lsp`.
-- Works without setup(); call `require('noctune').setup(opts)` (or set `vim.g.noctune`) only to
-- change options (see :help noctune-options).
local M = {}

function M.setup(opts)
  require('noctune.config').set(opts)
end

--- Starts the server for a buffer (autostart calls this for file buffers in git repositories).
function M.attach(bufnr)
  return require('noctune.client').attach(bufnr)
end

M.subcommands = {
  chat = function(args, range)
    require('noctune.chat').open(args, range)
  end,
  cancel = function()
    require('noctune.chat').cancel()
  end,
  approvals = function()
    require('noctune.runs').approvals()
  end,
  run = function(args)
    require('noctune.runs').start(vim.trim(args))
  end,
  stop = function(args)
    require('noctune.runs').stop(vim.trim(args))
  end,
  runs = function()
    require('noctune.runs').list()
  end,
  studio = function()
    require('noctune.runs').studio()
  end,
  start = function()
    M.attach(0)
  end,
  restart = function()
    require('noctune.client').stop_all()
    vim.defer_fn(function()
      M.attach(0)
    end, 200)
  end,
}

--- `:Noctune <subcommand> [args]`
function M.command(opts)
  local sub, rest = (opts.args or ''):match('^%s*(%S*)%s*(.-)%s*$')
  local fn = M.subcommands[sub]
  if not fn then
    local names = vim.tbl_keys(M.subcommands)
    table.sort(names)
    vim.notify('Noctune: unknown subcommand "' .. sub .. '"; one of: ' .. table.concat(names, ', '), vim.log.levels.ERROR)
    return
  end
  local range = opts.range and opts.range > 0 and { opts.line1, opts.line2 } or nil
  fn(rest, range)
end

function M.complete(arglead, cmdline)
  local words = vim.split(cmdline, '%s+', { trimempty = false })
  if #words <= 2 then
    local names = vim.tbl_keys(M.subcommands)
    table.sort(names)
    return vim.tbl_filter(function(n)
      return n:find(arglead, 1, true) == 1
    end, names)
  end
  if words[2] == 'run' and #words == 3 then
    return vim.tbl_filter(function(n)
      return n:find(arglead, 1, true) == 1
    end, require('noctune.runs').packs())
  end
  return {}
end

return M
