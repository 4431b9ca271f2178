-- A run's pending approval is a diagnostic; :Noctune approvals lists it in the quickfix list;
-- the server's "Approve" code action approves it and the run finishes.
local H = dofile(os.getenv('NOCTUNE_TEST_DIR') .. '/helpers.lua')
local repo = os.getenv('NOCTUNE_TEST_REPO')

local function noctune_diags(buf)
  return vim.tbl_filter(function(d)
    return d.source == 'noctune'
  end, vim.diagnostic.get(buf))
end

H.run('approval', function()
  vim.cmd('edit ' .. repo .. '/shapes/render.py')
  local buf = vim.api.nvim_get_current_buf()
  local client = H.client()
  vim.cmd('Noctune run lint_fix')
  H.wait(120000, function()
    return #noctune_diags(buf) > 0
  end, 'an approval diagnostic on shapes/render.py')
  local d = noctune_diags(buf)[1]
  H.eq(d.severity, vim.diagnostic.severity.INFO, 'severity')

  vim.cmd('Noctune approvals')
  H.wait(10000, function()
    return #vim.fn.getqflist() == 1
  end, 'one quickfix item')
  local item = vim.fn.getqflist()[1]
  H.eq(item.lnum, d.lnum + 1, 'quickfix line')
  H.eq(vim.api.nvim_buf_get_name(item.bufnr), repo .. '/shapes/render.py', 'quickfix file')

  local runs = require('noctune.client').request_sync(client, 'noctune/runs/list', {}, 5000)
  local run_id = runs.runs[1].run_id

  -- Back in the file, on the diagnostic's line: the code actions come from the server.
  vim.cmd('cclose')
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_win_set_cursor(0, { d.lnum + 1, 0 })
  local titles = {}
  vim.lsp.buf.code_action({
    filter = function(a)
      table.insert(titles, a.title)
      return a.title == 'Approve'
    end,
    apply = true,
  })
  H.wait(10000, function()
    return #noctune_diags(buf) == 0
  end, 'the diagnostic to clear after Approve')
  H.truthy(vim.tbl_contains(titles, 'Reject') and vim.tbl_contains(titles, 'Show diff'), vim.inspect(titles))

  local approvals = H.noctune_json({ 'approvals', run_id, '--json' })
  local pending, approved = 0, 0
  for _, a in ipairs(approvals) do
    if a.status == 'pending' then
      pending = pending + 1
    elseif a.status == 'approved' then
      approved = approved + 1
      H.truthy(a.decision.decided_by:find('Neovim', 1, true) or a.decision.decided_by:find('lsp', 1, true), a.decision.decided_by)
    end
  end
  H.eq(pending, 0, 'pending approvals')
  H.eq(approved, 1, 'approved approvals')
  H.wait(120000, function()
    return H.noctune_json({ 'status', run_id, '--json' }).status == 'done'
  end, 'the run to finish')
end)
