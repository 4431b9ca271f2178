-- :Noctune chat streams the answer into its buffer, piece by piece, with the prompt line kept
-- at the bottom.
local H = dofile(os.getenv('NOCTUNE_TEST_DIR') .. '/helpers.lua')
local repo = os.getenv('NOCTUNE_TEST_REPO')
local FINAL = 'Hello from the fake model, streamed slowly.'

H.run('chat', function()
  vim.cmd('edit ' .. repo .. '/shapes/geometry.py')
  H.client()
  vim.cmd('2,3Noctune chat Say hello')
  local buf = H.truthy(require('noctune.chat').buffer(repo), 'a chat buffer')
  H.eq(vim.api.nvim_get_current_buf(), buf, 'the chat is the current buffer')
  H.eq(vim.bo[buf].buftype, 'prompt', 'buftype')
  local states = {}
  H.wait(30000, function()
    local t = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
    if states[#states] ~= t then
      table.insert(states, t)
    end
    return t:find(FINAL, 1, true) ~= nil
  end, 'the full answer in the chat buffer')
  -- It streamed: several partial answers were visible before the full one.
  local partial = 0
  for _, s in ipairs(states) do
    if s:find('Hello from', 1, true) and not s:find(FINAL, 1, true) then
      partial = partial + 1
    end
  end
  H.truthy(partial >= 3, 'at least 3 partial states, saw ' .. partial .. ': ' .. vim.inspect(states))
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  H.truthy(vim.tbl_contains(lines, '> Say hello'), 'the question is shown')
  H.truthy(vim.tbl_contains(lines, FINAL), 'the answer is on its own line')
  -- Wait for the request to end; the prompt line stays last.
  H.wait(10000, function()
    return vim.api.nvim_buf_get_lines(buf, -2, -1, false)[1] == '> '
      or vim.api.nvim_buf_get_lines(buf, -2, -1, false)[1] == ''
  end, 'the prompt line at the bottom')
  -- A second message typed on the prompt line continues the same session.
  vim.cmd('stopinsert')
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('AAgain<CR>', true, false, true), 'xt', false)
  H.wait(30000, function()
    local n = 0
    for _, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
      if l == FINAL then
        n = n + 1
      end
    end
    return n == 2
  end, 'the second answer')
  local all = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local n_again = #vim.tbl_filter(function(l)
    return l == '> Again'
  end, all)
  H.eq(n_again, 1, 'the second question once: ' .. vim.inspect(all))
  H.eq(all[#all], '> ', 'the prompt line is last')
end)
