-- :checkhealth noctune is clean: no ERROR or WARNING, and the binary and server are OK.
local H = dofile(os.getenv('NOCTUNE_TEST_DIR') .. '/helpers.lua')
local repo = os.getenv('NOCTUNE_TEST_REPO')

H.run('checkhealth', function()
  vim.cmd('edit ' .. repo .. '/shapes/geometry.py')
  H.client()
  vim.cmd('checkhealth noctune')
  local lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  local text = table.concat(lines, '\n')
  H.log(text)
  H.truthy(text:find('noctune', 1, true), 'the report has a noctune section')
  H.truthy(not text:find('ERROR', 1, true), 'no ERROR in the report')
  H.truthy(not text:find('WARNING', 1, true), 'no WARNING in the report')
  local oks = 0
  for _, l in ipairs(lines) do
    if l:find('OK', 1, true) then
      oks = oks + 1
    end
  end
  H.truthy(oks >= 5, 'at least 5 OK lines, got ' .. oks)
  H.truthy(text:find('lsp` is available', 1, true), 'the lsp command is checked')
  H.truthy(text:find('server running for ' .. repo, 1, true), 'the running server is reported')
end)
