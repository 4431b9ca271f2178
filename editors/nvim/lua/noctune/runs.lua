-- `:Noctune run <pack>`, `:Noctune stop [run_id]`, `:Noctune runs`, `:Noctune approvals`,
-- `:Noctune studio`: thin calls of the noctune/* requests.
local client = require('noctune.client')
local config = require('noctune.config')
local protocol = require('noctune.protocol')

local M = {}

local function with_client(fn)
  local c = client.ensure(0)
  if not c then
    vim.notify('Noctune: no language server (open a file inside a git repository)', vim.log.levels.ERROR)
    return
  end
  fn(c)
end

local function report(err)
  vim.notify('Noctune: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
end

function M.start(pack)
  if not pack or pack == '' then
    vim.notify('Noctune: usage :Noctune run <pack> (see :Noctune packs)', vim.log.levels.ERROR)
    return
  end
  with_client(function(c)
    client.request(c, protocol.methods.runs_start, { pack = pack, profile = config.get().profile }, function(err, rec)
      if err then
        return report(err)
      end
      vim.notify(string.format('Noctune: run %s (%s) started on %s', rec.run_id, rec.pack, rec.branch))
    end)
  end)
end

local function live(runs)
  local out = {}
  for _, r in ipairs(runs or {}) do
    if r.status ~= 'done' and r.status ~= 'failed' and r.status ~= 'stopped' then
      table.insert(out, r)
    end
  end
  return out
end

function M.stop(run_id)
  with_client(function(c)
    local function stop(id)
      vim.notify('Noctune: stopping run ' .. id .. ' …')
      client.request(c, protocol.methods.runs_stop, { run_id = id }, function(err, rec)
        if err then
          return report(err)
        end
        vim.notify(string.format('Noctune: run %s is %s', rec.run_id, rec.status))
      end)
    end
    if run_id and run_id ~= '' then
      return stop(run_id)
    end
    client.request(c, protocol.methods.runs_list, vim.empty_dict(), function(err, res)
      if err then
        return report(err)
      end
      local runs = live(res.runs)
      if #runs == 0 then
        return vim.notify('Noctune: no run is running')
      elseif #runs == 1 then
        return stop(runs[1].run_id)
      end
      vim.ui.select(runs, {
        prompt = 'Stop which run?',
        format_item = function(r)
          return string.format('%s  %s  %s', r.run_id, r.pack, r.status)
        end,
      }, function(r)
        if r then
          stop(r.run_id)
        end
      end)
    end)
  end)
end

function M.list()
  with_client(function(c)
    client.request(c, protocol.methods.runs_list, vim.empty_dict(), function(err, res)
      if err then
        return report(err)
      end
      local lines = {}
      for _, r in ipairs(res.runs or {}) do
        table.insert(lines, string.format('%s  %-10s %-16s %s', r.run_id, r.pack, r.status, r.error or ''))
      end
      vim.notify(#lines > 0 and table.concat(lines, '\n') or 'Noctune: no runs yet')
    end)
  end)
end

--- Pending approvals into the quickfix list; the code actions on each line come from the
--- server (`vim.lsp.buf.code_action()`).
function M.approvals()
  with_client(function(c)
    client.request(c, protocol.methods.approvals, vim.empty_dict(), function(err, res)
      if err then
        return report(err)
      end
      local items = {}
      for _, a in ipairs(res.approvals or {}) do
        table.insert(items, {
          filename = vim.uri_to_fname(a.uri),
          lnum = a.line + 1,
          col = 1,
          type = 'I',
          text = string.format('[%s risk %d, %d lines] %s (%s)', a.pack, a.risk_score, a.lines_changed, a.reason, a.approval_id),
          user_data = { run_id = a.run_id, approval_id = a.approval_id },
        })
      end
      vim.fn.setqflist({}, ' ', { title = 'Noctune approvals', items = items })
      if #items == 0 then
        vim.notify('Noctune: no approvals are waiting')
      else
        vim.cmd('botright copen')
      end
    end)
  end)
end

function M.packs(cb)
  local c = client.ensure(0)
  if not c then
    return {}
  end
  local res = client.request_sync(c, protocol.methods.packs, vim.empty_dict(), 2000)
  if cb then
    cb(res)
  end
  return res and res.packs or {}
end

function M.studio()
  with_client(function(c)
    client.request(c, protocol.methods.studio_url, { open = false }, function(err, res)
      if err then
        return report(err)
      end
      if not res.url or res.url == vim.NIL then
        return vim.notify('Noctune: /studio is not available: ' .. tostring(res.error), vim.log.levels.ERROR)
      end
      if vim.ui.open then
        local ok = pcall(vim.ui.open, res.url)
        if ok then
          return vim.notify('Noctune: opened ' .. res.url)
        end
      end
      vim.notify('Noctune Studio: ' .. res.url)
    end)
  end)
end

return M
