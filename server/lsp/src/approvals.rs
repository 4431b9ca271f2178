//! Pending approvals of runs on this workspace as diagnostics, with code actions Approve /
//! Reject / Show diff (`workspace/executeCommand`). The watcher refreshes them about every
//! 500 ms, so a decision made elsewhere (web, MCP, CLI) clears the diagnostic.

use super::diagnostics::{diagnostic, item};
use super::protocol::{self, ApprovalItem, DecideArgs};
use super::state::{Shared, blocking, failed, invalid};
use noctune_core::{ApprovalStatus, Decision};
use serde_json::{Value, json};
use std::collections::HashSet;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams, Command, ShowDocumentParams,
    Uri,
};

/// `noctune/approvals`: pending approvals of this workspace's live runs (or, with `all`,
/// every approval of them; with `run_id`, of that run only).
pub async fn list(shared: &Shared, p: protocol::ApprovalsParams) -> Result<Value> {
    let studio = shared.studio().await?;
    let repo = shared.repo().await?;
    let runs = match &p.run_id {
        Some(id) => {
            let (s, id) = (studio.clone(), id.clone());
            vec![blocking(move || s.status(&id)).await?]
        }
        None => {
            let (s, r) = (studio.clone(), repo.clone());
            blocking(move || s.list_runs(Some(&r)))
                .await?
                .into_iter()
                .filter(|r| !r.status.is_terminal())
                .collect()
        }
    };
    let mut items = Vec::new();
    for rec in runs {
        let (s, id) = (studio.clone(), rec.run_id.to_string());
        let approvals = blocking(move || s.approvals(&id)).await?;
        for a in approvals
            .iter()
            .filter(|a| p.all || a.status == ApprovalStatus::Pending)
        {
            items.push(item(shared, &repo, rec.run_id.as_str(), &rec.pack, a));
        }
    }
    Ok(json!({"approvals": items}))
}

fn actions_for(i: &ApprovalItem, many: bool) -> Vec<CodeActionOrCommand> {
    let args = serde_json::to_value(DecideArgs {
        run_id: i.run_id.clone(),
        approval_id: i.approval_id.clone(),
        reason: None,
    })
    .unwrap_or(Value::Null);
    let suffix = if many {
        format!(" ({} in run {})", i.file_path, i.run_id)
    } else {
        String::new()
    };
    [
        (protocol::ACTION_APPROVE, protocol::CMD_APPROVE),
        (protocol::ACTION_REJECT, protocol::CMD_REJECT),
        (protocol::ACTION_SHOW_DIFF, protocol::CMD_SHOW_DIFF),
    ]
    .into_iter()
    .map(|(title, cmd)| {
        CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("{title}{suffix}"),
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![diagnostic(i)]),
            command: Some(Command {
                title: title.to_string(),
                command: cmd.to_string(),
                arguments: Some(vec![args.clone()]),
            }),
            is_preferred: Some(cmd == protocol::CMD_APPROVE),
            ..CodeAction::default()
        })
    })
    .collect()
}

/// `textDocument/codeAction`: the actions of pending approvals on the requested lines (or
/// named by the diagnostics the client sends back).
pub fn code_actions(shared: &Shared, p: &CodeActionParams) -> Vec<CodeActionOrCommand> {
    if let Some(only) = &p.context.only
        && !only
            .iter()
            .any(|k| k.as_str() == "quickfix" || k.as_str().is_empty())
    {
        return Vec::new();
    }
    let published = shared.approvals.current();
    let Some(items) = published.get(p.text_document.uri.as_str()) else {
        return Vec::new();
    };
    let named: HashSet<String> = p
        .context
        .diagnostics
        .iter()
        .filter(|d| d.source.as_deref() == Some(protocol::SOURCE))
        .filter_map(|d| {
            d.data
                .as_ref()?
                .get("approval_id")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let hits: Vec<&ApprovalItem> = items
        .iter()
        .filter(|i| {
            named.contains(&i.approval_id)
                || (p.range.start.line <= i.line && i.line <= p.range.end.line)
        })
        .collect();
    let many = hits.len() > 1;
    hits.into_iter()
        .flat_map(|i| actions_for(i, many))
        .collect()
}

fn decide_args(arguments: &[Value]) -> Result<DecideArgs> {
    let first = arguments
        .first()
        .ok_or_else(|| invalid("expected one argument {run_id, approval_id}"))?;
    serde_json::from_value(first.clone())
        .map_err(|e| invalid(format!("expected {{run_id, approval_id, reason?}}: {e}")))
}

/// `noctune.approve` / `noctune.reject`: records the decision through the facade and
/// republishes at once.
pub async fn decide(shared: &Shared, arguments: &[Value], decision: Decision) -> Result<Value> {
    let a = decide_args(arguments)?;
    let studio = shared.studio().await?;
    let by = shared.decided_by();
    let reason = a.reason.clone().unwrap_or_default();
    let d =
        blocking(move || studio.decide(&a.run_id, &a.approval_id, decision, &reason, &by)).await?;
    let _ = super::watch::refresh(shared, true).await;
    serde_json::to_value(d).map_err(|e| failed(e.to_string()))
}

/// `noctune.showDiff`: writes the diff under `.noctune_cache/lsp/diffs/` and asks the client to
/// show it; returns the diff too (for clients that render it themselves).
pub async fn show_diff(shared: &Shared, arguments: &[Value]) -> Result<Value> {
    let a = decide_args(arguments)?;
    let studio = shared.studio().await?;
    let repo = shared.repo().await?;
    let run = a.run_id.clone();
    let (rec, views) =
        blocking(move || Ok((studio.status(&run)?, studio.approvals(&run)?))).await?;
    let view = views
        .iter()
        .find(|v| v.approval_id == a.approval_id)
        .ok_or_else(|| {
            failed(format!(
                "run {} has no approval {}",
                a.run_id, a.approval_id
            ))
        })?;
    let i = item(shared, &repo, rec.run_id.as_str(), &rec.pack, view);
    let dir = repo.join(".noctune_cache").join("lsp").join("diffs");
    let file = dir.join(format!("{}-{}.diff", rec.run_id, view.approval_id));
    let header = format!(
        "# Noctune {} run {}: {} ({}), risk {}\n# {}\n",
        i.pack, i.run_id, i.file_path, i.status, i.risk_score, i.reason
    );
    let body = format!("{header}{}", i.diff);
    let written = tokio::task::spawn_blocking({
        let (dir, file) = (dir.clone(), file.clone());
        move || std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, body))
    })
    .await
    .map_err(|e| failed(e.to_string()))?;
    let uri = Uri::from_file_path(&file);
    let mut shown = false;
    if written.is_ok()
        && shared.caps().show_document
        && let Some(uri) = uri.clone()
    {
        let params = ShowDocumentParams {
            uri,
            external: Some(false),
            take_focus: Some(true),
            selection: None,
        };
        shown = shared.client.show_document(params).await.unwrap_or(false);
    }
    Ok(json!({
        "run_id": i.run_id, "approval_id": i.approval_id, "file_path": i.file_path, "diff": i.diff,
        "uri": uri.map(|u| u.as_str().to_string()), "shown": shown,
    }))
}

pub fn unknown_command(cmd: &str) -> Error {
    invalid(format!(
        "unknown command {cmd:?}; known: {}",
        protocol::COMMANDS.join(", ")
    ))
}
