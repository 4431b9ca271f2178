-- The noctune/* extension of the protocol (docs/lsp-protocol.md), mirrored for Neovim.
local M = {}

M.methods = {
  chat = 'noctune/chat',
  chat_cancel = 'noctune/chatCancel',
  runs_start = 'noctune/runs/start',
  runs_list = 'noctune/runs/list',
  runs_stop = 'noctune/runs/stop',
  approvals = 'noctune/approvals',
  packs = 'noctune/packs',
  studio_url = 'noctune/studioUrl',
}

M.notifications = {
  chat_delta = 'noctune/chatDelta',
}

M.commands = {
  approve = 'noctune.approve',
  reject = 'noctune.reject',
  show_diff = 'noctune.showDiff',
}

--- Titles of the permission prompt's buttons, in order.
M.permission_buttons = { 'Allow once', 'Allow this session', 'Always allow', 'Deny' }

--- Titles of the code actions on an approval diagnostic.
M.action_titles = { 'Approve', 'Reject', 'Show diff' }

M.diagnostic_source = 'noctune'
M.protocol_version = 1

return M
