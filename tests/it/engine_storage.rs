//! Compact approval storage (issue 11): a request stores the unified diff and the git blob ids
//! of the pre- and post-image, the texts live in the repository's object store, and the audit
//! DB row of an approval stays within twice its diff. Old request files (whole texts) and old
//! audit DBs (schema version 1) are still read, decided and applied.

use crate::support::harness::Harness;
use crate::support::repo::FixtureRepo;
use noctune_core::{
    ApprovalRequest, Decision, Proposal, ProposalSource, RecordedEdit, ResumePolicy, RunId,
    RunRecord, RunStatus, approval_id, unified_diff,
};
use noctune_studio::{ApprovalStatus, ApprovalView, Studio};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIG: &str = "shapes/big.py";
/// Lines of [`big_file`].
const BIG_LINES: usize = 3000;

/// A 3,000-line module that `ruff format` leaves alone except for the eight functions written
/// `x+N`: a lint fix of 16 changed lines in eight hunks (a ~1.5 KB diff), over the auto-approve
/// limits (public functions touched), so it waits for a decision.
fn big_file() -> String {
    let mut out = String::from("\"\"\"Generated: many small functions.\"\"\"\n");
    let mut i = 0;
    while out.lines().count() + 4 <= BIG_LINES {
        let body = if i % 90 == 45 {
            format!("x+{i}")
        } else {
            format!("x + {i}")
        };
        out.push_str(&format!("\n\ndef f{i}(x):\n    return {body}\n"));
        i += 1;
    }
    // Padding inside the last function's body, which the formatter leaves as it is.
    while out.lines().count() < BIG_LINES {
        out.push_str("    # end\n");
    }
    out
}

fn state_dir(repo: &Path, run_id: &str) -> PathBuf {
    repo.join(".noctune_cache/runs").join(run_id).join("state")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn blob(repo: &Path, id: &str) -> Option<String> {
    let repo = git2::Repository::open(repo).unwrap();
    let b = repo.find_blob(git2::Oid::from_str(id).unwrap()).ok()?;
    Some(String::from_utf8(b.content().to_vec()).unwrap())
}

/// `git` itself, on the fixture repository (what a user's `git gc` does to it).
fn git(repo: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn view<'a>(list: &'a [ApprovalView], file: &str) -> &'a ApprovalView {
    list.iter()
        .find(|a| a.file_path == file)
        .unwrap_or_else(|| panic!("no approval of {file}: {list:#?}"))
}

fn approve_all_pending(h: &Harness, run_id: &str) {
    for a in h.approvals(run_id) {
        if a.status == ApprovalStatus::Pending {
            h.studio
                .decide(run_id, &a.approval_id, Decision::Approve, "", "test")
                .unwrap();
        }
    }
}

/// Bytes of the approval's row: `payload_json` alone, and every column of the row together.
fn row_bytes(db: &Path, approval_id: &str) -> Option<(i64, i64)> {
    let db = rusqlite::Connection::open(db).unwrap();
    db.query_row(
        "SELECT length(CAST(payload_json AS BLOB)),
             length(CAST(payload_json AS BLOB)) + length(CAST(diff AS BLOB))
             + length(CAST(run_id AS BLOB)) + length(CAST(approval_id AS BLOB))
             + length(CAST(created_at AS BLOB)) + length(CAST(file_path AS BLOB))
             + length(CAST(symbol AS BLOB)) + length(CAST(reason AS BLOB)) + 8
             + ifnull(length(before_blob), 0) + ifnull(length(after_blob), 0)
         FROM approvals WHERE approval_id = ?1",
        [approval_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

#[test]
fn a_lint_fix_of_a_3000_line_file_is_stored_as_its_diff_and_commits_what_was_shown() {
    let big = big_file();
    assert_eq!(big.lines().count(), BIG_LINES);
    let h = Harness::new("pyproj", &[(BIG, &big)]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 90);
    let shown = view(&h.approvals(&run_id), BIG).clone();
    assert_eq!(shown.status, ApprovalStatus::Pending, "{shown:#?}");
    let spots = big.matches("return x+").count();
    assert_eq!(shown.lines_changed as usize, 2 * spots, "{}", shown.diff);
    let diff_bytes = shown.diff.len();
    assert!(diff_bytes > 500, "{}", shown.diff);

    // The request file: the diff and two blob ids, not the 3,000 lines twice.
    let file = state_dir(&h.repo.path(), &run_id)
        .join("approvals")
        .join(format!("{}.json", shown.approval_id));
    let file_bytes = std::fs::metadata(&file).unwrap().len() as usize;
    let req = read_json(&file);
    assert!(req.get("proposal").is_none(), "{req:#}");
    assert!(
        file_bytes <= 2 * diff_bytes + 1024,
        "request file {file_bytes} bytes for a {diff_bytes}-byte diff"
    );
    assert!(file_bytes * 10 < big.len(), "{file_bytes} vs {}", big.len());
    let before_blob = req["edit"]["before_blob"].as_str().unwrap().to_string();
    let after_blob = req["edit"]["after_blob"].as_str().unwrap().to_string();
    // The pre-image is the base commit's own blob: nothing was duplicated.
    let git_repo = h.repo.repo();
    let base = git_repo.head().unwrap().peel_to_tree().unwrap();
    assert_eq!(
        base.get_path(Path::new(BIG)).unwrap().id().to_string(),
        before_blob
    );
    let post_image = blob(&h.repo.path(), &after_blob).expect("post-image blob");
    assert_eq!(unified_diff(BIG, &big, &post_image), shown.diff);

    // The audit DB row: within twice the diff, the row as a whole and its payload.
    let (payload, row) = crate::support::wait::wait_for(
        Duration::from_secs(30),
        "the approval's row in the audit DB",
        || row_bytes(&h.db(), &shown.approval_id),
    );
    assert!(
        row as usize <= 2 * diff_bytes,
        "row {row} bytes (payload_json {payload}) for a {diff_bytes}-byte diff"
    );

    // Kept from `git gc` by the run's ref; and without it, rebuilt from the diff.
    let kept = git_repo
        .find_reference(&format!("refs/noctune/runs/{run_id}"))
        .unwrap()
        .peel_to_tree()
        .unwrap();
    assert!(kept.get_name(&after_blob).is_some());
    git(&h.repo.path(), &["gc", "--prune=now", "--quiet"]);
    assert!(blob(&h.repo.path(), &after_blob).is_some(), "pruned");
    git(
        &h.repo.path(),
        &["update-ref", "-d", &format!("refs/noctune/runs/{run_id}")],
    );
    git(&h.repo.path(), &["gc", "--prune=now", "--quiet"]);
    assert!(
        blob(&h.repo.path(), &after_blob).is_none(),
        "the post-image is referenced elsewhere; the rebuild is not exercised"
    );
    let again = view(&h.approvals(&run_id), BIG).clone();
    assert_eq!(again.status, ApprovalStatus::Pending, "{again:#?}");
    assert_eq!(again.diff, shown.diff);

    // Approved: the commit holds exactly the post-image that was shown.
    approve_all_pending(&h, &run_id);
    let done = h.studio.wait(&run_id, |_| {}).unwrap();
    assert_eq!(done.status, RunStatus::Done, "{done:#?}");
    let committed = h.repo.read_at(&done.branch, BIG);
    assert!(
        committed == post_image,
        "the commit is not the shown post-image"
    );
    let decision = read_json(
        &state_dir(&h.repo.path(), &run_id)
            .join("approvals")
            .join(format!("{}.decision.json", shown.approval_id)),
    );
    assert_eq!(decision["after_sha256"], sha256(&committed));
    assert_eq!(decision["before_sha256"], sha256(&big));
}

/// Rewrites a stored request in the whole-text form of older versions (same content).
fn to_old_format(repo: &Path, file: &Path) -> Value {
    let mut req = read_json(file);
    let edit = req["edit"].clone();
    let text = |k: &str| blob(repo, edit[k].as_str().unwrap()).unwrap();
    let obj = req.as_object_mut().unwrap();
    obj.remove("edit");
    let proposal = json!({
        "file_path": obj["file_path"].clone(), "symbol": obj["symbol"].clone(),
        "before": text("before_blob"), "after": text("after_blob"),
        "source": edit["source"].clone(), "major_bump": false,
    });
    obj.insert("proposal".into(), proposal);
    std::fs::write(file, serde_json::to_vec_pretty(&req).unwrap()).unwrap();
    req
}

#[test]
fn an_old_format_request_file_is_still_decided_and_applied() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    // Stopped, as a run of an older version would have been before an upgrade.
    let stopped = h
        .studio
        .stop(&run_id, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    let shown: Vec<ApprovalView> = h
        .approvals(&run_id)
        .into_iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .collect();
    assert!(!shown.is_empty());
    let dir = state_dir(&h.repo.path(), &run_id).join("approvals");
    let mut post_images = Vec::new();
    for a in &shown {
        let old = to_old_format(&h.repo.path(), &dir.join(format!("{}.json", a.approval_id)));
        post_images.push((a.file_path.clone(), old["proposal"]["after"].clone()));
    }
    let listed = h.approvals(&run_id);
    for a in &shown {
        let now = listed
            .iter()
            .find(|b| b.approval_id == a.approval_id)
            .unwrap();
        assert_eq!(now.status, ApprovalStatus::Pending, "{now:#?}");
        assert_eq!(now.diff, a.diff);
    }
    approve_all_pending(&h, &run_id);
    h.studio.resume(&run_id).unwrap();
    let done = h.studio.wait(&run_id, |_| {}).unwrap();
    assert_eq!(done.status, RunStatus::Done, "{done:#?}");
    for (file, after) in post_images {
        assert_eq!(json!(h.repo.read_at(&done.branch, &file)), after, "{file}");
    }
}

fn old_run(run_id: &RunId, repo: &Path) -> RunRecord {
    RunRecord {
        run_id: run_id.clone(),
        status: RunStatus::Done,
        started_at: "2026-11-25T10:10:10.000Z".into(),
        updated_at: "2026-11-25T10:12:10.000Z".into(),
        ended_at: Some("2026-11-25T10:12:10.000Z".into()),
        repo_root: repo.display().to_string(),
        pack: "lint_fix".into(),
        profile: "default".into(),
        branch: format!("noctune/lint_fix/{run_id}"),
        head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        error: None,
        resume_policy: ResumePolicy::Continue,
        worker_pid: None,
        worker_start_time: None,
        stage: "done".into(),
        commits: None,
        reason: None,
        summary: None,
    }
}

#[test]
fn an_old_format_audit_db_migrates_and_still_lists_its_approvals_with_diffs() {
    let repo = FixtureRepo::new("pyproj", &[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.sqlite");
    let run_id = RunId::parse("20261125T101010Z-0000abcd").unwrap();
    let before = repo.read("shapes/render.py");
    let after = before.replace("area,perimeter", "area, perimeter");
    let p = Proposal {
        file_path: "shapes/render.py".into(),
        symbol: String::new(),
        before: before.clone(),
        after: after.clone(),
        source: ProposalSource::Command,
        major_bump: false,
    };
    let diff = unified_diff(&p.file_path, &before, &after);
    let old = ApprovalRequest {
        approval_id: approval_id("lint_fix", &p),
        run_id: run_id.clone(),
        pack: "lint_fix".into(),
        created_at: "2026-11-25T10:11:00.000Z".into(),
        file_path: p.file_path.clone(),
        symbol: String::new(),
        risk_score: 40,
        reason: "risk 40 > max_risk 30".into(),
        diff: diff.clone(),
        lines_changed: 2,
        auto_approved: false,
        content: RecordedEdit::Whole(p),
    };
    // The whole request, texts included, is what version 1 stored as the payload.
    let payload = serde_json::to_string(&old).unwrap();
    assert!(payload.contains("\"proposal\":{") && payload.contains("\"before\":"));
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(noctune_store::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        let rec = old_run(&run_id, &repo.path());
        conn.execute(
            "INSERT INTO runs (run_id, repo_root, pack, profile, status, started_at, updated_at,
                 ended_at, head_sha, branch, payload_json)
             VALUES (?1, ?2, 'lint_fix', 'default', 'done', ?3, ?4, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                run_id.as_str(),
                rec.repo_root,
                rec.started_at,
                rec.updated_at,
                rec.head_sha,
                rec.branch,
                serde_json::to_string(&rec).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO approvals (run_id, approval_id, created_at, file_path, symbol,
                 risk_score, reason, diff, payload_json)
             VALUES (?1, ?2, ?3, ?4, '', 40, ?5, ?6, ?7)",
            rusqlite::params![
                run_id.as_str(),
                old.approval_id.as_str(),
                old.created_at,
                old.file_path,
                old.reason,
                diff,
                payload
            ],
        )
        .unwrap();
        let decision = json!({"approval_id": old.approval_id.as_str(), "decision": "reject",
            "decided_at": "2026-11-25T10:12:00.000Z", "decided_by": "alice", "reason": "later"});
        conn.execute(
            "INSERT INTO decisions (run_id, approval_id, decision, decided_at, decided_by,
                 reason, payload_json)
             VALUES (?1, ?2, 'reject', '2026-11-25T10:12:00.000Z', 'alice', 'later', ?3)",
            rusqlite::params![
                run_id.as_str(),
                old.approval_id.as_str(),
                decision.to_string()
            ],
        )
        .unwrap();
    }

    let studio = Studio::for_repository(&db, &repo.path()).unwrap();
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, noctune_store::MIGRATIONS.len() as i64);
    assert!(version >= 2, "migrated to the compact schema");
    let listed = studio.approvals(run_id.as_str()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let a = &listed[0];
    assert_eq!(a.approval_id, old.approval_id.as_str());
    assert_eq!(a.status, ApprovalStatus::Rejected, "{a:#?}");
    assert_eq!(a.diff, diff);
    assert_eq!(a.lines_changed, 2);
}
