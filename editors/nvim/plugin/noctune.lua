-- Noctune Studio: `:Noctune {chat|approvals|run|stop|runs|studio|cancel|start|restart}`.
-- No default keymaps: map the <Plug>(noctune-...) mappings yourself. No setup() required.
if vim.g.loaded_noctune then
  return
end
vim.g.loaded_noctune = true

if vim.fn.has('nvim-0.10') ~= 1 then
  vim.api.nvim_echo({ { 'noctune: Neovim 0.10 or newer is required', 'ErrorMsg' } }, true, {})
  return
end

vim.api.nvim_create_user_command('Noctune', function(opts)
  require('noctune').command(opts)
end, {
  nargs = '*',
  range = true,
  desc = 'Noctune Studio: chat, approvals, runs, studio',
  complete = function(arglead, cmdline)
    return require('noctune').complete(arglead, cmdline)
  end,
})

vim.keymap.set('n', '<Plug>(noctune-chat)', '<Cmd>Noctune chat<CR>', { desc = 'Noctune: chat' })
vim.keymap.set('x', '<Plug>(noctune-chat)', ':Noctune chat<CR>', { desc = 'Noctune: chat about the selection' })
vim.keymap.set('n', '<Plug>(noctune-approvals)', '<Cmd>Noctune approvals<CR>', { desc = 'Noctune: approvals' })
vim.keymap.set('n', '<Plug>(noctune-stop)', '<Cmd>Noctune stop<CR>', { desc = 'Noctune: stop a run' })
vim.keymap.set('n', '<Plug>(noctune-studio)', '<Cmd>Noctune studio<CR>', { desc = 'Noctune: open /studio' })
vim.keymap.set('n', '<Plug>(noctune-cancel)', '<Cmd>Noctune cancel<CR>', { desc = 'Noctune: stop the answer' })

local group = vim.api.nvim_create_augroup('noctune', { clear = true })
vim.api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile' }, {
  group = group,
  desc = 'Start noctune lsp for files in git repositories',
  callback = function(ev)
    local ok, config = pcall(require, 'noctune.config')
    if ok and config.get().autostart then
      require('noctune.client').attach(ev.buf)
    end
  end,
})
