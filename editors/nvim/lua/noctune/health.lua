-- :checkhealth noctune
local M = {}

local health = vim.health

function M.check()
  health.start('noctune')
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim 0.10 or newer is required', { 'Upgrade Neovim' })
    return
  end

  local config = require('noctune.config')
  local cmd = config.command()
  local exe = vim.fn.exepath(cmd[1])
  if exe == '' then
    health.error(
      string.format('the noctune binary (%s) is not executable or not on $PATH', cmd[1]),
      { 'Build it: cargo install --path . (in the Noctune Studio repository)', "or set require('noctune').setup({ cmd = '/path/to/noctune' })" }
    )
    return
  end
  local out = vim.fn.system({ exe, '--version' })
  if vim.v.shell_error ~= 0 then
    health.error(string.format('%s --version failed: %s', exe, vim.trim(out)))
    return
  end
  health.ok(string.format('%s (%s)', vim.trim(out), exe))

  local help = vim.fn.system({ exe, 'lsp', '--help' })
  if vim.v.shell_error == 0 and help:find('--no-http', 1, true) then
    health.ok('`noctune lsp` is available')
  else
    health.error('this noctune has no `lsp` command: ' .. vim.trim(help), { 'Update the noctune binary' })
  end

  if vim.fn.executable('git') == 1 then
    health.ok('git found')
  else
    health.warn('git not found on $PATH (repositories are still found by their .git folder)')
  end

  local root = require('noctune.client').root(0)
  if root then
    local check = vim.fn.system({ exe, 'config', 'check', '--repo', root, '--json' })
    if vim.v.shell_error == 0 then
      health.ok('configuration of ' .. root .. ' is valid')
    else
      health.error('configuration of ' .. root .. ': ' .. vim.trim(check))
    end
  else
    health.info('the current directory is not in a git repository; open a file in one to start the server')
  end

  local clients = require('noctune.client').clients()
  if #clients > 0 then
    for _, c in ipairs(clients) do
      health.ok(string.format('server running for %s (client id %d)', c.config.root_dir or '?', c.id))
    end
  else
    health.info('no server running yet (it starts when a file in a git repository is opened)')
  end
  local opts = config.get()
  health.info(string.format('options: autostart=%s http=%s profile=%s', tostring(opts.autostart), tostring(opts.http), tostring(opts.profile)))
end

return M
