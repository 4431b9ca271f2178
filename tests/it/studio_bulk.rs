//! Bulk decisions: every pending approval of a run a filter picks (a glob on the file path, a
//! risk ceiling) decided in one request, each through the single-decision path and recorded by
//! itself; on the facade in process, over HTTP (the real server), over MCP (the real
//! `noctune mcp`) and with `noctune decide --all-pending`. Also: `noctune run` off a terminal
//! prints a table of files at the end instead of a line per file.
//!
//! The fixture: `pyproj` plus five lint-dirty modules under `pkg/`, and a pack that extends
//! `lint_fix` with auto-approval off, so every fixed file waits for a decision (ten of them).

use crate::http_support::StudioProc;
use crate::mcp_support::connect_stdio;
use crate::support::cli::Noctune;
use crate::support::harness::Harness;
use crate::support::repo::FixtureRepo;
use crate::support::wait::wait_until_async;
use noctune_studio::{
    ApprovalFilter, ApprovalStatus, ApprovalView, BulkDecision, BulkOutcome, Decision, ErrorCode,
    RunStatus, SkipReason,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const PACK: &str = "review_all";
const NOCTUNE_TOML: &str =
    "[policy_packs.review_all]\nextends = \"lint_fix\"\nauto_approve = { enabled = false }\n";
/// The five modules the glob `pkg/*.py` picks.
const PKG: [&str; 5] = [
    "pkg/mod_a.py",
    "pkg/mod_b.py",
    "pkg/mod_c.py",
    "pkg/mod_d.py",
    "pkg/mod_e.py",
];
const DIRTY: &str = "import os\nimport sys\n\n\ndef f():\n    return 1\n";

fn files() -> Vec<(&'static str, &'static str)> {
    let mut f: Vec<(&str, &str)> = PKG.iter().map(|p| (*p, DIRTY)).collect();
    f.push(("noctune.toml", NOCTUNE_TOML));
    f
}

fn pending(list: &[ApprovalView]) -> Vec<&ApprovalView> {
    list.iter()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .collect()
}

/// A run of [`PACK`] waiting for its decisions, with at least `PKG.len()` plus others pending.
fn waiting() -> (Harness, String) {
    let h = Harness::new("pyproj", &files());
    let run_id = h.start(PACK).run_id.to_string();
    h.wait_status(&run_id, RunStatus::WaitingApproval, 90);
    // Waiting starts once every file was policed: all of them are listed by now.
    let list = h.approvals(&run_id);
    let p = pending(&list);
    assert!(p.len() > PKG.len(), "{list:#?}");
    for f in PKG {
        assert!(p.iter().any(|a| a.file_path == f), "{f}: {list:#?}");
    }
    (h, run_id)
}

/// The decisions of `run_id` in the audit DB (SQLite): approval id → (decision, decided_by).
fn db_decisions(db: &Path, run_id: &str) -> Vec<(String, String, String)> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut q = db
        .prepare(
            "SELECT approval_id, decision, decided_by FROM decisions WHERE run_id = ?1 \
             ORDER BY approval_id",
        )
        .unwrap();
    q.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn decided_ids(r: &BulkDecision) -> BTreeSet<String> {
    r.items
        .iter()
        .filter(|i| matches!(i.outcome, BulkOutcome::Decided { .. }))
        .map(|i| i.approval_id.clone())
        .collect()
}

fn filter(glob: Option<&str>, max_risk: Option<u8>) -> ApprovalFilter {
    ApprovalFilter {
        glob: glob.map(str::to_string),
        max_risk,
    }
}

#[test]
fn all_pending_approve_decides_every_one_and_each_is_in_the_audit_db() {
    let (h, run_id) = waiting();
    let before = pending(&h.approvals(&run_id))
        .iter()
        .map(|a| a.approval_id.clone())
        .collect::<BTreeSet<_>>();
    let n = before.len();

    let r = h
        .studio
        .decide_many(
            &run_id,
            &ApprovalFilter::default(),
            Decision::Approve,
            "reviewed in bulk",
            "test:bulk",
        )
        .unwrap();
    assert_eq!((r.decided as usize, r.skipped), (n, 0), "{r:#?}");
    assert!(!r.dry_run);
    assert_eq!(decided_ids(&r), before);
    for i in &r.items {
        let BulkOutcome::Decided { decision } = &i.outcome else {
            panic!("{i:#?}")
        };
        // Each is a decision of its own, bound to the content of its approval.
        assert_eq!(decision.approval_id.as_str(), i.approval_id);
        assert_eq!(decision.file_path.as_deref(), Some(i.file_path.as_str()));
        assert_eq!(decision.reason, "reviewed in bulk");
    }
    let list = h.approvals(&run_id);
    assert!(
        list.iter().all(|a| a.status == ApprovalStatus::Approved),
        "{list:#?}"
    );
    let db = db_decisions(&h.db(), &run_id);
    assert_eq!(db.len(), n, "{db:#?}");
    for (id, decision, by) in &db {
        assert!(before.contains(id), "{id}");
        assert_eq!((decision.as_str(), by.as_str()), ("approve", "test:bulk"));
    }
    // Again: nothing is pending, each is skipped as decided, naming who decided it.
    let again = h
        .studio
        .decide_many(
            &run_id,
            &ApprovalFilter::default(),
            Decision::Reject,
            "",
            "test:late",
        )
        .unwrap();
    assert_eq!((again.decided, again.skipped as usize), (0, n));
    for i in &again.items {
        let BulkOutcome::Skipped {
            reason, message, ..
        } = &i.outcome
        else {
            panic!("{i:#?}")
        };
        assert_eq!(*reason, SkipReason::AlreadyDecided);
        assert!(
            message.contains("already approved by test:bulk"),
            "{message}"
        );
    }
    assert_eq!(db_decisions(&h.db(), &run_id).len(), n);
    let done = h.studio.wait(&run_id, |_| {}).unwrap();
    assert_eq!(done.status, RunStatus::Done, "{done:#?}");
    assert!(!h.studio.commits(&done).unwrap().is_empty());
    // The worker took them as it takes single decisions: one approval_decided event each.
    let events = h.events(&run_id);
    let decided: BTreeSet<String> = events
        .iter()
        .filter(|e| e.kind == "approval_decided")
        .map(|e| e.payload["approval_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decided, before);
}

#[test]
fn glob_and_max_risk_pick_subsets_and_a_bad_filter_changes_nothing() {
    let (h, run_id) = waiting();
    let list = h.approvals(&run_id);
    let all: Vec<ApprovalView> = pending(&list).into_iter().cloned().collect();

    // Refused before anything is decided, naming the bad input.
    for (f, reason, what) in [
        (filter(Some("pkg/[a-"), None), "", "pkg/[a-"),
        (filter(None, Some(101)), "", "max_risk 101"),
        (
            filter(Some("pkg/*.py"), None),
            &*"x".repeat(noctune_studio::limits::MAX_REASON_BYTES + 1),
            "reason",
        ),
    ] {
        let e = h
            .studio
            .decide_many(&run_id, &f, Decision::Approve, reason, "test")
            .unwrap_err();
        let code = if what == "reason" {
            ErrorCode::TooLarge
        } else {
            ErrorCode::InvalidArguments
        };
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(what), "{e:?}");
    }
    assert_eq!(pending(&h.approvals(&run_id)).len(), all.len());
    assert!(db_decisions(&h.db(), &run_id).is_empty());

    // A preview decides nothing and says what would be decided.
    let glob = filter(Some("pkg/*.py"), None);
    let preview = h
        .studio
        .preview_many(&run_id, &glob, Decision::Approve, "")
        .unwrap();
    assert!(preview.dry_run);
    assert_eq!((preview.matched, preview.decided), (PKG.len() as u32, 0));
    assert_eq!(pending(&h.approvals(&run_id)).len(), all.len());

    // The glob picks the five modules of pkg/; `*` stays within the directory.
    let r = h
        .studio
        .decide_many(&run_id, &glob, Decision::Approve, "pkg is fine", "test")
        .unwrap();
    let picked: BTreeSet<String> = r
        .items
        .iter()
        .filter(|i| matches!(i.outcome, BulkOutcome::Decided { .. }))
        .map(|i| i.file_path.clone())
        .collect();
    assert_eq!(picked, PKG.iter().map(|s| s.to_string()).collect());
    for i in r
        .items
        .iter()
        .filter(|i| !PKG.contains(&i.file_path.as_str()))
    {
        assert_eq!(i.skip_reason(), Some(SkipReason::GlobMismatch), "{i:#?}");
    }
    let star = h
        .studio
        .preview_many(&run_id, &filter(Some("*.py"), None), Decision::Approve, "")
        .unwrap();
    assert_eq!(star.matched, 0, "{star:#?}");

    // A risk ceiling picks the rest at or under it; the others are skipped with their risk.
    let rest: Vec<&ApprovalView> = all
        .iter()
        .filter(|a| !PKG.contains(&a.file_path.as_str()))
        .collect();
    let mut risks: Vec<u8> = rest.iter().map(|a| a.risk_score).collect();
    risks.sort();
    let ceiling = risks[risks.len() / 2];
    assert!(ceiling < *risks.last().unwrap(), "{risks:?}");
    let r = h
        .studio
        .decide_many(
            &run_id,
            &filter(None, Some(ceiling)),
            Decision::Reject,
            "too risky for now",
            "test",
        )
        .unwrap();
    let want: BTreeSet<String> = rest
        .iter()
        .filter(|a| a.risk_score <= ceiling)
        .map(|a| a.approval_id.clone())
        .collect();
    assert_eq!(decided_ids(&r), want);
    for i in &r.items {
        match i.skip_reason() {
            Some(SkipReason::OverMaxRisk) => {
                assert!(i.risk_score > ceiling);
                let BulkOutcome::Skipped { message, .. } = &i.outcome else {
                    unreachable!()
                };
                assert_eq!(message, &format!("risk {} > {ceiling}", i.risk_score));
            }
            Some(SkipReason::AlreadyDecided) => assert!(PKG.contains(&i.file_path.as_str())),
            None => assert!(i.risk_score <= ceiling),
            other => panic!("{other:?}: {i:#?}"),
        }
    }
    let db = db_decisions(&h.db(), &run_id);
    assert_eq!(db.len(), PKG.len() + want.len(), "{db:#?}");
    assert_eq!(
        db.iter().filter(|(_, d, _)| d == "reject").count(),
        want.len()
    );
    h.studio
        .stop(&run_id, Some(Duration::from_secs(5)))
        .unwrap();
}

/// Changes what a recorded request's id hashes (its pack), as anything with write access to
/// `.noctune_cache` could: the request no longer is what its id names.
fn tamper(repo: &Path, run_id: &str, id: &str) {
    let path = repo
        .join(".noctune_cache/runs")
        .join(run_id)
        .join(format!("state/approvals/{id}.json"));
    let mut req: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(req["pack"], PACK, "{req:#}");
    req["pack"] = json!("lint_fix");
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&req).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

#[test]
fn decided_and_tampered_approvals_are_skipped_with_their_reasons() {
    let (h, run_id) = waiting();
    let list = h.approvals(&run_id);
    let p = pending(&list);
    let first = p[0].approval_id.clone();
    let second = p[1].approval_id.clone();
    h.studio
        .decide(&run_id, &first, Decision::Reject, "by hand", "test:alice")
        .unwrap();
    tamper(&h.repo.path(), &run_id, &second);

    let r = h
        .studio
        .decide_many(
            &run_id,
            &ApprovalFilter::default(),
            Decision::Approve,
            "",
            "test:bulk",
        )
        .unwrap();
    let of = |id: &str| r.items.iter().find(|i| i.approval_id == id).unwrap();
    let BulkOutcome::Skipped {
        reason, message, ..
    } = &of(&first).outcome
    else {
        panic!("{r:#?}")
    };
    assert_eq!(*reason, SkipReason::AlreadyDecided);
    assert!(
        message.contains("already rejected by test:alice"),
        "{message}"
    );
    let BulkOutcome::Skipped {
        reason, message, ..
    } = &of(&second).outcome
    else {
        panic!("{r:#?}")
    };
    assert_eq!(*reason, SkipReason::Tampered);
    assert!(
        message.contains("changed after it was proposed"),
        "{message}"
    );
    assert_eq!(r.decided as usize, p.len() - 2, "{r:#?}");

    // Nothing was recorded for the tampered one; the hand decision stayed as it was.
    let db = db_decisions(&h.db(), &run_id);
    assert_eq!(db.len(), p.len() - 1);
    assert!(!db.iter().any(|(id, _, _)| *id == second));
    assert!(db.contains(&(first.clone(), "reject".into(), "test:alice".into())));
    let _ = h.studio.stop(&run_id, Some(Duration::from_secs(5)));
}

#[test]
fn http_decides_all_pending_with_a_preview_first_and_refuses_a_bad_glob() {
    let repo = FixtureRepo::new("pyproj", &files());
    let nt = Noctune::new();
    let studio = StudioProc::start(&nt, &repo.path());
    let r = studio.post_json("/api/runs", &json!({"pack": PACK}));
    assert_eq!(r.status, 201, "{}", r.text());
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    studio.wait_status(&run_id, 90, |s| s == "waiting_approval");
    let list = studio.json(&format!("/api/runs/{run_id}/approvals"))["approvals"].clone();
    let n = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "pending")
        .count();
    assert!(n > PKG.len(), "{list:#}");
    let path = format!("/api/runs/{run_id}/approvals/decide");

    let bad = studio.post_json(&path, &json!({"decision": "approve", "glob": "pkg/[a-"}));
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (400, "invalid_arguments"),
        "{}",
        bad.text()
    );
    assert!(bad.json()["message"].as_str().unwrap().contains("pkg/[a-"));
    let bad = studio.post_json(&path, &json!({"decision": "maybe"}));
    assert_eq!(bad.status, 400, "{}", bad.text());

    let preview = studio.post_json(
        &path,
        &json!({"decision": "approve", "glob": "pkg/*.py", "dry_run": true}),
    );
    assert_eq!(preview.status, 200, "{}", preview.text());
    let preview = preview.json();
    assert_eq!(preview["matched"], PKG.len());
    assert_eq!(preview["decided"], 0);
    assert!(db_decisions(&nt.db(), &run_id).is_empty());

    let r = studio.post_json(
        &path,
        &json!({"decision": "approve", "glob": "pkg/*.py", "reason": "pkg ok"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["decided"], PKG.len(), "{body:#}");
    let items = body["items"].as_array().unwrap();
    assert!(
        items.iter().all(|i| (i["outcome"]["kind"] == "decided")
            == PKG.contains(&i["file_path"].as_str().unwrap()))
    );
    assert!(
        items
            .iter()
            .any(|i| i["outcome"]["reason"] == "glob_mismatch")
    );

    let r = studio.post_json(&path, &json!({"decision": "approve"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["decided"], n - PKG.len());
    let db = db_decisions(&nt.db(), &run_id);
    assert_eq!(db.len(), n);
    assert!(
        db.iter().all(|(_, d, by)| d == "approve" && by == "web"),
        "{db:#?}"
    );
    let done = studio.wait_status(&run_id, 120, |s| s == "done" || s == "failed");
    assert_eq!(done["status"], "done", "{done:#}");
}

const CLIENT: &str = "noctune-bulk-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_decide_approval_takes_all_pending_with_a_filter_and_answers_each_outcome() {
    let repo = FixtureRepo::new("pyproj", &files());
    let nt = Noctune::new();
    let mcp = connect_stdio(&nt, CLIENT, &[], &[]).await;
    let schema = &mcp.schemas["decide_approval"];
    let props = &schema.input["properties"];
    assert_eq!(
        props["all_pending"]["type"], "boolean",
        "{:#}",
        schema.input
    );
    assert!(props.get("glob").is_some() && props.get("max_risk").is_some());
    assert!(
        !schema.input["required"]
            .as_array()
            .unwrap()
            .contains(&json!("approval_id"))
    );

    let run = mcp
        .ok(
            "enqueue_run",
            json!({"repo_root": repo.path().display().to_string(), "pack": PACK}),
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_string();
    wait_until_async(Duration::from_secs(90), "the run to wait", async || {
        mcp.ok("get_status", json!({"run_id": run_id})).await["status"] == "waiting_approval"
    })
    .await;
    let list = mcp.ok("list_approvals", json!({"run_id": run_id})).await;
    let n = list["pending"].as_u64().unwrap() as usize;
    assert!(n > PKG.len(), "{list:#}");
    let any_id = list["approvals"][0]["approval_id"].clone();

    // Both forms at once, or a filter without all_pending: refused by the schema and the tool.
    for args in [
        json!({"run_id": run_id, "approval_id": any_id, "all_pending": true, "decision": "approve"}),
        json!({"run_id": run_id, "approval_id": any_id, "glob": "pkg/*.py", "decision": "approve"}),
        json!({"run_id": run_id, "decision": "approve"}),
    ] {
        assert!(!mcp.request_is_valid("decide_approval", &args), "{args}");
        let msg = mcp.err("decide_approval", args, "invalid_arguments").await;
        assert!(msg.contains("all_pending"), "{msg}");
    }
    let msg = mcp
        .err(
            "decide_approval",
            json!({"run_id": run_id, "all_pending": true, "glob": "pkg/[a-", "decision": "approve"}),
            "invalid_arguments",
        )
        .await;
    assert!(msg.contains("pkg/[a-"), "{msg}");

    let r = mcp
        .ok(
            "decide_approval",
            json!({"run_id": run_id, "all_pending": true, "glob": "pkg/**", "decision": "approve", "reason": "pkg ok"}),
        )
        .await;
    assert_eq!(r["decided"], PKG.len(), "{r:#}");
    for i in r["items"].as_array().unwrap() {
        if i["outcome"]["kind"] == "decided" {
            assert_eq!(
                i["outcome"]["decision"]["decided_by"],
                format!("mcp:{CLIENT}")
            );
        } else {
            assert_eq!(i["outcome"]["reason"], "glob_mismatch", "{i:#}");
        }
    }
    let r = mcp
        .ok(
            "decide_approval",
            json!({"run_id": run_id, "all_pending": true, "max_risk": 100, "decision": "reject", "reason": "later"}),
        )
        .await;
    assert_eq!(r["decided"], n - PKG.len(), "{r:#}");
    let list = mcp.ok("list_approvals", json!({"run_id": run_id})).await;
    assert_eq!(list["pending"], 0, "{list:#}");
    // The single form still answers the decision itself.
    let one = mcp
        .err(
            "decide_approval",
            json!({"run_id": run_id, "approval_id": any_id, "decision": "approve"}),
            "already_decided",
        )
        .await;
    assert!(one.contains(&format!("mcp:{CLIENT}")), "{one}");
    assert_eq!(db_decisions(&nt.db(), &run_id).len(), n);
    let _ = mcp.call_raw("stop_run", json!({"run_id": run_id})).await;
    mcp.client.cancel().await.unwrap();
}

#[test]
fn cli_decide_all_pending_prints_each_decision_and_the_totals() {
    let repo = FixtureRepo::new("pyproj", &files());
    let nt = Noctune::new();
    let run_id = nt.start(&repo.path(), PACK);
    nt.wait_status(&run_id, "waiting_approval", 90);
    let n = nt
        .approvals(&run_id)
        .iter()
        .filter(|a| a["status"] == "pending")
        .count();
    let some_id = nt.approvals(&run_id)[0]["approval_id"]
        .as_str()
        .unwrap()
        .to_string();

    let both = nt.run(&["decide", &run_id, &some_id, "approve", "--all-pending"]);
    assert_eq!(both.code, 2, "{}{}", both.stdout, both.stderr);
    assert!(
        both.stderr.contains("--all-pending") && both.stderr.contains(&some_id),
        "{}",
        both.stderr
    );
    let no_id = nt.run(&["decide", &run_id, "approve"]);
    assert_eq!(no_id.code, 2, "{}", no_id.stderr);
    assert!(no_id.stderr.contains("APPROVAL_ID"), "{}", no_id.stderr);
    let bad = nt.run(&[
        "decide",
        &run_id,
        "--all-pending",
        "approve",
        "--glob",
        "pkg/[a-",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("pkg/[a-"), "{}", bad.stderr);
    assert!(db_decisions(&nt.db(), &run_id).is_empty());

    let dry = nt
        .run(&[
            "decide",
            &run_id,
            "--all-pending",
            "approve",
            "--glob",
            "pkg/*.py",
            "--dry-run",
        ])
        .ok();
    assert!(
        dry.stdout.contains(&format!(
            "would be approved {}, skipped {}",
            PKG.len(),
            n - PKG.len()
        )),
        "{}",
        dry.stdout
    );
    assert!(db_decisions(&nt.db(), &run_id).is_empty());

    let ran = nt
        .run(&[
            "decide",
            &run_id,
            "--all-pending",
            "approve",
            "--glob",
            "pkg/*.py",
            "--reason",
            "ok",
            "--by",
            "tester",
        ])
        .ok();
    let lines: Vec<&str> = ran.stdout.lines().collect();
    for f in PKG {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("approved ") && l.contains(f)),
            "{f}: {}",
            ran.stdout
        );
    }
    assert_eq!(
        *lines.last().unwrap(),
        format!(
            "approved {}, skipped {} (not matching \"pkg/*.py\")",
            PKG.len(),
            n - PKG.len()
        ),
        "{}",
        ran.stdout
    );

    // The rest in one command; the ones decided above are only counted.
    let ran = nt
        .run(&[
            "decide",
            &run_id,
            "--all-pending",
            "reject",
            "--reason",
            "later",
        ])
        .ok();
    let last = ran.stdout.lines().last().unwrap().to_string();
    assert_eq!(
        last,
        format!(
            "rejected {}, skipped 0; not pending: {} already decided",
            n - PKG.len(),
            PKG.len()
        ),
        "{}",
        ran.stdout
    );
    let db = db_decisions(&nt.db(), &run_id);
    assert_eq!(db.len(), n);
    assert_eq!(
        db.iter().filter(|(_, _, by)| by == "cli:tester").count(),
        PKG.len()
    );
    // The single form still works (and is refused here: it was decided above).
    let one = nt.decide(&run_id, &some_id, "approve", "");
    assert_eq!(one.code, 2);
    assert!(one.stderr.contains("already"), "{}", one.stderr);
    nt.run(&["stop", &run_id]);
}

const AUTO_PACK: &str = "[policy_packs.auto_all]\nextends = \"lint_fix\"\nauto_approve = { enabled = true, max_risk = 100, max_lines = 100 }\n";

#[test]
fn run_off_a_terminal_prints_a_table_of_files_at_the_end_not_a_line_per_file() {
    let mut extra: Vec<(&str, &str)> = PKG.iter().map(|p| (*p, DIRTY)).collect();
    extra.push(("noctune.toml", AUTO_PACK));
    let repo = FixtureRepo::new("pyproj", &extra);
    let nt = Noctune::new();
    let repo_s = repo.path().display().to_string();
    // stdout is a pipe here.
    let ran = nt.run(&["run", "--repo", &repo_s, "--pack", "auto_all"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let out = &ran.stdout;
    // No line per file as the run goes (the old `  proposed  pkg/mod_a.py`, `  approved  ...`).
    for l in out.lines() {
        assert!(
            !(l.starts_with("  proposed  ") || l.starts_with("  approved  ")),
            "{l:?} in\n{out}"
        );
    }
    assert!(out.contains("== propose"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("FILE ") && l.contains("VERDICT") && l.ends_with("STATUS"))
        .unwrap_or_else(|| panic!("no table:\n{out}"));
    for f in PKG {
        let row = lines[head..]
            .iter()
            .find(|l| l.starts_with(f))
            .unwrap_or_else(|| panic!("{f} not in the table:\n{out}"));
        assert!(
            row.contains("auto-approved") && row.contains("committed "),
            "{row}"
        );
    }
    assert!(out.contains("ended: done"), "{out}");
}
