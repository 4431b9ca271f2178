-- Options. Nothing needs setting: `require('noctune').setup(opts)` or `vim.g.noctune = opts`
-- only override these defaults.
local M = {}

M.defaults = {
  -- The server command: a path or a list; nil: `noctune` on $PATH.
  cmd = nil,
  -- Start the server for buffers of files inside a git repository.
  autostart = true,
  -- Also serve /studio over HTTP from the server process (needed by `:Noctune studio`).
  http = true,
  -- Model profile for chat and runs (nil: the repository's default).
  profile = nil,
  -- Folders chat may touch (NOCTUNE_STUDIO_ALLOWED_ROOTS); nil: the repository.
  allowed_roots = nil,
  -- Filetypes to attach to (nil: all file buffers).
  filetypes = nil,
  chat = {
    -- 'vsplit' or 'split'
    split = 'vsplit',
    size = nil,
  },
  -- How permission prompts are answered: function(message, titles) -> title|nil.
  -- nil: a `confirm()` dialog with the buttons.
  permission_prompt = nil,
}

M.options = nil

function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), vim.g.noctune or {}, opts or {})
  return M.options
end

function M.get()
  return M.options or M.set({})
end

--- The server command as a list (without the `lsp` arguments).
function M.command()
  local cmd = M.get().cmd
  if type(cmd) == 'string' then
    return { cmd }
  elseif type(cmd) == 'table' and #cmd > 0 then
    return vim.deepcopy(cmd)
  end
  return { 'noctune' }
end

return M
