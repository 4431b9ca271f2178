-- `:Noctune chat`: a split with the conversation (Markdown) and a prompt line at the bottom.
-- Answers stream in from noctune/chatDelta notifications.
local client = require('noctune.client')
local config = require('noctune.config')
local protocol = require('noctune.protocol')

local M = {}

-- One chat per repository root: { buf, root, session, source_buf, requests = { [rid] = req } }
local chats = {}
-- requestId -> { chat, first, count, text }
local inflight = {}
local counter = 0
local ns = vim.api.nvim_create_namespace('noctune_chat')

local function short(v, max)
  local s = type(v) == 'string' and v or vim.json.encode(v)
  max = max or 120
  if #s > max then
    s = s:sub(1, max) .. '…'
  end
  return s
end

--- Lines above the prompt line.
local function output_end(buf)
  return math.max(vim.api.nvim_buf_line_count(buf) - 1, 0)
end

local function append(buf, lines)
  local at = output_end(buf)
  vim.api.nvim_buf_set_lines(buf, at, at, false, lines)
  return at
end

local function scroll(chat)
  for _, win in ipairs(vim.fn.win_findbuf(chat.buf)) do
    vim.api.nvim_win_set_cursor(win, { vim.api.nvim_buf_line_count(chat.buf), 0 })
  end
end

--- Re-renders the answer region of a request from its text.
local function render(req)
  local buf = req.chat.buf
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local lines = vim.split(req.text, '\n', { plain = true })
  local pos = vim.api.nvim_buf_get_extmark_by_id(buf, ns, req.mark, {})
  local first = pos[1] or req.first
  vim.api.nvim_buf_set_lines(buf, first, first + req.count, false, lines)
  req.count = #lines
  scroll(req.chat)
end

local function chat_for(root)
  local chat = chats[root]
  if chat and vim.api.nvim_buf_is_valid(chat.buf) then
    return chat
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, 'noctune://chat/' .. vim.fs.basename(root))
  vim.bo[buf].buftype = 'prompt'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = 'markdown'
  chat = { buf = buf, root = root, session = nil, source_buf = nil }
  chats[root] = chat
  vim.fn.prompt_setprompt(buf, '> ')
  vim.fn.prompt_setcallback(buf, function(text)
    if vim.trim(text) ~= '' then
      M.send(chat, text, nil, false)
    end
  end)
  vim.fn.prompt_setinterrupt(buf, function()
    M.cancel(chat)
  end)
  vim.api.nvim_buf_set_lines(buf, 0, 0, false, { '# Noctune chat · ' .. root, '' })
  vim.keymap.set('n', '<C-c>', function()
    M.cancel(chat)
  end, { buffer = buf, desc = 'Noctune: stop the answer' })
  return chat
end

local function show(chat)
  local wins = vim.fn.win_findbuf(chat.buf)
  if #wins > 0 then
    vim.api.nvim_set_current_win(wins[1])
    return
  end
  local opts = config.get().chat or {}
  local size = opts.size and tostring(opts.size) or ''
  vim.cmd((opts.split == 'split' and 'botright ' .. size .. 'split' or 'botright ' .. size .. 'vsplit'))
  vim.api.nvim_win_set_buf(0, chat.buf)
  vim.wo.wrap = true
  vim.wo.linebreak = true
end

--- The editor context of the buffer the user came from: its URI, and the selection when the
--- command was given a range.
local function context(src, range)
  if not src or not vim.api.nvim_buf_is_valid(src) or vim.bo[src].buftype ~= '' then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(src)
  if name == '' then
    return nil
  end
  local ctx = { uri = vim.uri_from_bufnr(src) }
  if range then
    local lines = vim.api.nvim_buf_get_lines(src, range[1] - 1, range[2], false)
    ctx.text = table.concat(lines, '\n')
    ctx.selection = {
      start = { line = range[1] - 1, character = 0 },
      ['end'] = { line = range[2], character = 0 },
    }
  end
  return ctx
end

--- `echo`: show the question (not needed when it was typed on the prompt line, which stays).
function M.send(chat, text, range, echo)
  local c = client.get(chat.source_buf) or client.ensure(chat.source_buf)
  if not c then
    vim.notify('Noctune: no language server for ' .. chat.root, vim.log.levels.ERROR)
    return
  end
  counter = counter + 1
  local rid = string.format('nvim-%d-%d', vim.fn.getpid(), counter)
  if echo ~= false then
    append(chat.buf, { '> ' .. text })
  end
  append(chat.buf, { '' })
  local first = append(chat.buf, { '' })
  local mark = vim.api.nvim_buf_set_extmark(chat.buf, ns, first, 0, { right_gravity = false })
  local req = { chat = chat, first = first, mark = mark, count = 1, text = '', rid = rid }
  inflight[rid] = req
  chat.current = rid
  local params = {
    message = text,
    session = chat.session,
    requestId = rid,
    profile = config.get().profile,
    context = context(chat.source_buf, range),
  }
  client.request(c, protocol.methods.chat, params, function(err, result)
    inflight[rid] = nil
    if chat.current == rid then
      chat.current = nil
    end
    if err then
      req.text = req.text .. '\n**Error:** ' .. (err.message or vim.inspect(err))
    elseif result then
      chat.session = result.session
      if req.text == '' and result.text then
        req.text = result.text
      end
    end
    render(req)
    append(chat.buf, { '' })
    scroll(chat)
  end)
end

--- A noctune/chatDelta notification.
function M.on_delta(d, _client_id)
  local req = d and inflight[d.requestId]
  if not req then
    return
  end
  req.chat.session = d.session
  local k = d.kind
  if k == 'delta' then
    req.text = req.text .. (d.text or '')
  elseif k == 'tool_call' then
    req.text = req.text .. string.format('\n`⚙ %s %s`\n', d.name or 'tool', short(d.arguments))
  elseif k == 'tool_result' then
    req.text = req.text .. string.format('`%s %s: %s`\n', d.ok and '✓' or '✗', d.name or 'tool', short(d.result, 80))
  elseif k == 'permission_request' then
    req.text = req.text .. string.format('\n_permission asked: %s_\n', d.summary or '')
  elseif k == 'notice' then
    req.text = req.text .. string.format('\n_%s_\n', d.message or '')
  elseif k == 'error' then
    req.text = req.text .. '\n**Error:** ' .. (d.message or '')
  else
    return
  end
  render(req)
end

function M.cancel(chat)
  chat = chat or chats[client.root(0) or '']
  if not chat or not chat.current then
    return
  end
  local c = client.get(chat.source_buf)
  if c then
    client.request(c, protocol.methods.chat_cancel, { requestId = chat.current }, function() end)
  end
end

--- `:Noctune chat [message]`, with an optional line range of the current buffer as selection.
function M.open(message, range)
  local src = vim.api.nvim_get_current_buf()
  local root = client.root(src)
  if vim.bo[src].buftype == 'prompt' then
    for r, ch in pairs(chats) do
      if ch.buf == src then
        root = r
      end
    end
  end
  if not root then
    vim.notify('Noctune: not inside a git repository', vim.log.levels.ERROR)
    return
  end
  local chat = chat_for(root)
  if vim.bo[src].buftype == '' then
    chat.source_buf = src
  end
  show(chat)
  if message and vim.trim(message) ~= '' then
    M.send(chat, message, range)
  end
  vim.cmd('startinsert!')
  return chat
end

--- The chat buffer of a repository (for tests and statuslines).
function M.buffer(root)
  local chat = chats[root or client.root(0) or '']
  return chat and chat.buf or nil
end

return M
