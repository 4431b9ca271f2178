-- Starting `noctune lsp` for a buffer's repository, finding its client, and sending requests
-- (Neovim 0.10 and 0.11+ call client methods differently).
local config = require('noctune.config')
local protocol = require('noctune.protocol')

local M = {}

local NAME = 'noctune'

--- The git repository root of a buffer, or nil.
function M.root(bufnr)
  bufnr = bufnr or 0
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' then
    return vim.fs.root(vim.fn.getcwd(), '.git')
  end
  return vim.fs.root(bufnr, '.git')
end

local function permission_prompt(message, titles)
  local custom = config.get().permission_prompt
  if custom then
    return custom(message, titles)
  end
  local choices = {}
  for i, t in ipairs(titles) do
    choices[i] = '&' .. i .. ' ' .. t
  end
  local n = vim.fn.confirm(message, table.concat(choices, '\n'), #titles)
  return titles[n]
end

local handlers = {
  [protocol.notifications.chat_delta] = function(_, params, ctx)
    require('noctune.chat').on_delta(params, ctx.client_id)
  end,
  -- Permission prompts: the four buttons, answered synchronously (the server waits).
  ['window/showMessageRequest'] = function(_, params)
    local titles = {}
    for _, a in ipairs(params.actions or {}) do
      table.insert(titles, a.title)
    end
    if #titles == 0 then
      vim.notify(params.message, vim.log.levels.INFO)
      return vim.NIL
    end
    local pick = permission_prompt(params.message, titles)
    if not pick then
      return vim.NIL
    end
    return { title = pick }
  end,
}

function M.cmd(root)
  local cmd = config.command()
  vim.list_extend(cmd, { 'lsp', '--repo', root })
  if not config.get().http then
    table.insert(cmd, '--no-http')
  end
  return cmd
end

--- Starts (or reuses) the server for the buffer's repository and attaches the buffer.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.bo[bufnr].buftype ~= '' then
    return nil
  end
  local ft = config.get().filetypes
  if ft and not vim.tbl_contains(ft, vim.bo[bufnr].filetype) then
    return nil
  end
  local root = M.root(bufnr)
  if not root then
    return nil
  end
  local env = nil
  local roots = config.get().allowed_roots
  if roots and #roots > 0 then
    env = { NOCTUNE_STUDIO_ALLOWED_ROOTS = table.concat(roots, ':') }
  end
  return vim.lsp.start({
    name = NAME,
    cmd = M.cmd(root),
    cmd_cwd = root,
    cmd_env = env,
    root_dir = root,
    handlers = handlers,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = vim.fs.basename(root) } },
  }, { bufnr = bufnr })
end

--- Every running noctune client.
function M.clients()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ name = NAME })
  end
  return {}
end

--- The client for a buffer (or the current one), else the one for the current directory's
--- repository, else any.
function M.get(bufnr)
  local clients = M.clients()
  local root = M.root(bufnr or 0)
  for _, c in ipairs(clients) do
    if root and c.config.root_dir == root then
      return c
    end
  end
  return clients[1]
end

--- Like `get`, but starts the server for the current buffer's repository when needed.
function M.ensure(bufnr)
  local c = M.get(bufnr)
  if c then
    return c
  end
  local id = M.attach(bufnr or 0)
  return id and vim.lsp.get_client_by_id(id) or nil
end

local has_011 = vim.fn.has('nvim-0.11') == 1

--- Sends a request; `handler(err, result)`.
function M.request(client, method, params, handler, bufnr)
  local h = function(err, result)
    handler(err, result)
  end
  if has_011 then
    return client:request(method, params, h, bufnr)
  end
  return client.request(method, params, h, bufnr)
end

--- Sends a request and waits (up to `timeout_ms`) for its result.
function M.request_sync(client, method, params, timeout_ms, bufnr)
  local r
  if has_011 then
    r = client:request_sync(method, params, timeout_ms, bufnr)
  else
    r = client.request_sync(method, params, timeout_ms, bufnr)
  end
  if not r then
    return nil, 'timed out'
  end
  if r.err then
    return nil, r.err.message or vim.inspect(r.err)
  end
  return r.result
end

function M.stop_all()
  for _, c in ipairs(M.clients()) do
    if has_011 then
      c:stop()
    else
      c.stop()
    end
  end
end

return M
