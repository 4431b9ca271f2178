//! Pending approvals as diagnostics, one on the first changed line of each edit: what the
//! watcher publishes about every 500 ms, and what `approvals` offers code actions for. Apart
//! from `approvals` because the watcher calls this and `approvals` calls the watcher (a
//! decision republishes at once), so neither direction turns into a loop of imports.

use super::protocol::{self, ApprovalItem};
use super::state::{Shared, Snapshot};
use noctune_core::ApprovalStatus;
use noctune_studio::ApprovalView;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use tower_lsp_server::ls_types::{
    Diagnostic, DiagnosticSeverity, NumberOrString, Position, Range, Uri,
};

/// The 0-based line (in the old file) of the first changed line of a unified diff.
pub fn first_changed_line(diff: &str) -> u32 {
    let mut old_line: Option<u32> = None;
    for l in diff.lines() {
        if let Some(rest) = l.strip_prefix("@@ -") {
            let start = rest
                .split([',', ' '])
                .next()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(1);
            old_line = Some(start.max(1));
            continue;
        }
        let Some(n) = old_line else { continue };
        if l.starts_with('-') || l.starts_with('+') {
            return n - 1;
        }
        if l.starts_with(' ') || l.is_empty() {
            old_line = Some(n + 1);
        }
    }
    old_line.map_or(0, |n| n.saturating_sub(1))
}

fn file_uri(shared: &Shared, repo: &Path, file_path: &str) -> String {
    let path = repo.join(file_path);
    if let Some(u) = shared.docs.uri_of(&path) {
        return u.as_str().to_string();
    }
    Uri::from_file_path(&path)
        .map(|u| u.as_str().to_string())
        .unwrap_or_else(|| format!("file://{}", path.display()))
}

pub fn item(
    shared: &Shared,
    repo: &Path,
    run_id: &str,
    pack: &str,
    a: &ApprovalView,
) -> ApprovalItem {
    ApprovalItem {
        run_id: run_id.to_string(),
        pack: pack.to_string(),
        approval_id: a.approval_id.clone(),
        file_path: a.file_path.clone(),
        uri: file_uri(shared, repo, &a.file_path),
        line: first_changed_line(&a.diff),
        symbol: a.symbol.clone(),
        risk_score: a.risk_score,
        reason: a.reason.clone(),
        diff: a.diff.clone(),
        status: a.status.as_str().to_string(),
        created_at: a.created_at.clone(),
        lines_changed: a.lines_changed,
        decision: a
            .decision
            .as_ref()
            .and_then(|d| serde_json::to_value(d).ok()),
    }
}

pub fn diagnostic(i: &ApprovalItem) -> Diagnostic {
    let what = if i.symbol.is_empty() {
        i.file_path.clone()
    } else {
        format!("{} in {}", i.symbol, i.file_path)
    };
    Diagnostic {
        range: Range {
            start: Position {
                line: i.line,
                character: 0,
            },
            end: Position {
                line: i.line + 1,
                character: 0,
            },
        },
        severity: Some(DiagnosticSeverity::INFORMATION),
        code: Some(NumberOrString::String("approval".into())),
        source: Some(protocol::SOURCE.into()),
        message: format!(
            "Noctune {} (run {}): edit of {what} awaits approval (risk {}, {} lines). {}",
            i.pack, i.run_id, i.risk_score, i.lines_changed, i.reason
        ),
        data: Some(json!({"run_id": i.run_id, "approval_id": i.approval_id})),
        ..Diagnostic::default()
    }
}

/// Publishes the pending approvals of `snap`, and empty lists for documents that had some.
pub async fn publish(shared: &Shared, repo: &Path, snap: &Snapshot) {
    let mut next: BTreeMap<String, Vec<ApprovalItem>> = BTreeMap::new();
    for (rec, approvals) in &snap.runs {
        if rec.status.is_terminal() {
            continue;
        }
        for a in approvals
            .iter()
            .filter(|a| a.status == ApprovalStatus::Pending)
        {
            let i = item(shared, repo, rec.run_id.as_str(), &rec.pack, a);
            next.entry(i.uri.clone()).or_default().push(i);
        }
    }
    let prev = std::mem::replace(
        &mut *shared
            .approvals
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
        next.clone(),
    );
    let uris: HashSet<&String> = prev.keys().chain(next.keys()).collect();
    for uri in uris {
        let now = next.get(uri).cloned().unwrap_or_default();
        if prev.get(uri) == Some(&now) {
            continue;
        }
        let Ok(u) = uri.parse::<Uri>() else { continue };
        shared
            .client
            .publish_diagnostics(u, now.iter().map(diagnostic).collect(), None)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::first_changed_line;

    #[test]
    fn first_changed_line_skips_context() {
        let d =
            "--- a/x.py\n+++ b/x.py\n@@ -10,7 +10,7 @@ def f():\n ctx1\n ctx2\n-old\n+new\n ctx3\n";
        assert_eq!(first_changed_line(d), 11);
        assert_eq!(first_changed_line("@@ -1 +1 @@\n-a\n+b\n"), 0);
        assert_eq!(first_changed_line("@@ -0,0 +1,2 @@\n+a\n+b\n"), 0);
        assert_eq!(first_changed_line(""), 0);
    }
}
