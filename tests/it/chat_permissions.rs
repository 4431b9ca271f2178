//! The permission gate (issue 3 §4) on a real repository folder and a real SQLite audit DB:
//! what needs a grant, how long each grant lasts, what survives a restart, what no grant can
//! allow, and that every decision lands in the audit.

use noctune_chat::permissions::{
    ALLOW_FILE, Check, GrantScope, PermissionAnswer, PermissionGate, PermissionRequest,
};
use noctune_chat::tool::ToolClass;
use noctune_store::AuditStore;
use std::path::PathBuf;

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("repo");
        std::fs::create_dir_all(root.join("src")).unwrap();
        Repo {
            db: base.join("data/audit.sqlite"),
            root,
            _dir: dir,
        }
    }
    fn gate(&self) -> PermissionGate {
        PermissionGate::new(&self.root, Some(&self.db)).unwrap()
    }
    fn root_str(&self) -> String {
        self.root.display().to_string()
    }
}

fn ask(c: Check) -> PermissionRequest {
    match c {
        Check::Ask(r) => r,
        other => panic!("expected Ask, got {other:?}"),
    }
}

fn allowed(c: &Check) -> Option<Option<GrantScope>> {
    match c {
        Check::Allowed { scope } => Some(*scope),
        _ => None,
    }
}

const W: ToolClass = ToolClass::Write;

#[test]
fn gate_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PermissionGate>();
}

#[test]
fn without_a_grant_write_run_and_decide_ask_and_read_is_allowed() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    assert_eq!(req.class, W);
    assert_eq!(req.path.as_deref(), Some("src/a.py"));
    assert_eq!(req.summary, "writeFile src/a.py");
    assert!(!req.protected);
    assert_eq!(req.session_id, "s1");
    let run = ask(g.check("s1", "noctuneStart", ToolClass::Run, None));
    assert_eq!(run.summary, "noctuneStart");
    ask(g.check("s1", "noctuneDecide", ToolClass::Decide, None));
    assert_ne!(run.id, req.id, "request ids are unique");
    assert_eq!(
        allowed(&g.check("s1", "readFile", ToolClass::Read, Some("src/a.py"))),
        Some(None)
    );
    // Reads of protected paths are the sandbox's business, not a grant's; only secret files
    // (see protected_paths_...) ask.
    assert_eq!(
        allowed(&g.check("s1", "readFile", ToolClass::Read, Some(".git/config"))),
        Some(None)
    );
    assert!(ask(g.check("s1", "readFile", ToolClass::Read, Some(".env"))).protected);
}

#[test]
fn once_allows_exactly_one_call() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Once, "alice").unwrap();
    let c = g.check("s1", "writeFile", W, Some("src/a.py"));
    assert_eq!(allowed(&c), Some(Some(GrantScope::Once)));
    // Bound to the call it was asked for: another path or session still asks.
    ask(g.check("s1", "writeFile", W, Some("src/b.py")));
    ask(g.check("s2", "writeFile", W, Some("src/a.py")));
    g.consume_once("s1", "writeFile", W, Some("src/a.py"));
    ask(g.check("s1", "writeFile", W, Some("src/a.py")));
}

#[test]
fn session_lasts_for_that_session_only() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Session, "alice").unwrap();
    for _ in 0..3 {
        let c = g.check("s1", "replaceLines", W, Some("src/other.py"));
        assert_eq!(
            allowed(&c),
            Some(Some(GrantScope::Session)),
            "any write tool, any path"
        );
        g.consume_once("s1", "replaceLines", W, Some("src/other.py"));
    }
    ask(g.check("s2", "writeFile", W, Some("src/a.py")));
    ask(g.check("s1", "noctuneStart", ToolClass::Run, None));
    // Not persisted: a new gate (a restart) asks again.
    ask(r.gate().check("s1", "writeFile", W, Some("src/a.py")));
    g.end_session("s1");
    ask(g.check("s1", "writeFile", W, Some("src/a.py")));
}

#[test]
fn always_survives_a_restart_through_studio_allow_json() {
    let r = Repo::new();
    {
        let g = r.gate();
        let req = ask(g.check("s1", "noctuneStart", ToolClass::Run, None));
        g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
        assert_eq!(
            allowed(&g.check("s9", "noctuneStop", ToolClass::Run, None)),
            Some(Some(GrantScope::Always))
        );
    }
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.root.join(ALLOW_FILE)).unwrap()).unwrap();
    assert_eq!(file["version"], 1);
    let grant = &file["grants"][0];
    assert_eq!(grant["scope"], "always");
    assert_eq!(grant["tool_class"], "run");
    assert_eq!(grant["root"], r.root_str());
    assert_eq!(grant["granted_by"], "alice");
    assert!(grant["granted_at"].as_str().unwrap().ends_with('Z'));

    let g2 = r.gate();
    assert_eq!(
        allowed(&g2.check("another-session", "noctuneStart", ToolClass::Run, None)),
        Some(Some(GrantScope::Always))
    );
    let listed = g2.always_grants();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tool_class, ToolClass::Run);
    assert_eq!(listed[0].granted_by, "alice");
    ask(g2.check("s1", "writeFile", W, Some("src/a.py")));
}

#[test]
fn revoke_ends_always_and_session_grants() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    let req = ask(g.check("s1", "noctuneDecide", ToolClass::Decide, None));
    g.answer(&req, PermissionAnswer::Session, "alice").unwrap();
    assert!(g.revoke(W, None, "bob").unwrap());
    ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    ask(r.gate().check("s1", "writeFile", W, Some("src/a.py")));
    assert!(g.always_grants().is_empty());
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.root.join(ALLOW_FILE)).unwrap()).unwrap();
    assert_eq!(file["grants"].as_array().unwrap().len(), 0);
    assert!(
        g.revoke(ToolClass::Decide, None, "bob").unwrap(),
        "the session grant"
    );
    ask(g.check("s1", "noctuneDecide", ToolClass::Decide, None));
    assert!(!g.revoke(W, None, "bob").unwrap(), "nothing left to revoke");
}

#[test]
fn a_revoke_in_another_process_is_seen_without_a_restart() {
    let r = Repo::new();
    let g1 = r.gate();
    let g2 = r.gate();
    let req = ask(g1.check("s1", "writeFile", W, Some("a.txt")));
    g1.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    assert_eq!(
        allowed(&g2.check("s2", "writeFile", W, Some("a.txt"))),
        Some(Some(GrantScope::Always)),
        "g2 picks the new grant up from the file"
    );
    assert!(g2.revoke(W, None, "bob").unwrap());
    ask(g1.check("s1", "writeFile", W, Some("a.txt")));
}

#[test]
fn a_grant_file_shipped_with_a_repository_is_not_honoured() {
    let r = Repo::new();
    std::fs::create_dir_all(r.root.join(".noctune_cache")).unwrap();
    let forged = serde_json::json!({"version": 1, "grants": [{
        "scope": "always", "tool_class": "write", "tool": null, "root": r.root_str(),
        "granted_at": "2026-01-01T00:00:00.000Z", "granted_by": "attacker"
    }]});
    std::fs::write(r.root.join(ALLOW_FILE), forged.to_string()).unwrap();
    let g = r.gate();
    ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    assert!(g.always_grants().is_empty());
}

#[test]
fn a_broken_grant_file_is_a_clear_error() {
    let r = Repo::new();
    std::fs::create_dir_all(r.root.join(".noctune_cache")).unwrap();
    std::fs::write(r.root.join(ALLOW_FILE), "{not json").unwrap();
    let e = PermissionGate::new(&r.root, Some(&r.db))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("studio_allow.json") && e.contains("move it aside"),
        "{e}"
    );
}

#[test]
fn mcp_tools_are_granted_by_name() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "fs__write_file", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Session, "alice").unwrap();
    assert_eq!(
        allowed(&g.check("s1", "fs__write_file", W, Some("src/b.py"))),
        Some(Some(GrantScope::Session))
    );
    ask(g.check("s1", "fs__delete_file", W, Some("src/b.py")));
    ask(g.check("s1", "writeFile", W, Some("src/b.py")));
    // And a class grant of our tools does not cover an MCP tool.
    let req = ask(g.check("s1", "writeFile", W, Some("src/b.py")));
    g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    ask(g.check("s1", "git__commit", W, None));
    assert!(g.revoke(W, Some("fs__write_file"), "alice").unwrap());
    ask(g.check("s1", "fs__write_file", W, Some("src/b.py")));
}

const PROTECTED: [&str; 26] = [
    ".git/config",
    ".GIT/config",
    "vendor/lib/.git/HEAD",
    ".env",
    ".Env",
    "app/.env.production",
    ".vscode/settings.json",
    ".VSCode/tasks.json",
    ".github/workflows/ci.yml",
    ".github/actions/setup/action.yml",
    ".github/dependabot.yml",
    ".gitattributes",
    ".gitmodules",
    ".mcp.json",
    ".claude/settings.json",
    ".cursor/rules/x.mdc",
    ".pre-commit-config.yaml",
    ".git-credentials",
    ".devcontainer/devcontainer.json",
    "certs/server.pem",
    "deploy/id_rsa",
    "home/.ssh/authorized_keys",
    ".npmrc",
    "secrets/signing.KEY",
    ".git/.noctune_cache/x",
    ".github/workflows/.noctune_cache/ci.yml",
];

#[test]
fn protected_paths_ask_even_under_always_and_session() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Session, "alice").unwrap();
    let req = ask(g.check("s2", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    assert_eq!(
        allowed(&g.check("s3", "writeFile", W, Some("src/a.py"))),
        Some(Some(GrantScope::Always))
    );
    for session in ["s1", "s3"] {
        for p in PROTECTED {
            let req = ask(g.check(session, "writeFile", W, Some(p)));
            assert!(req.protected, "{p}");
        }
    }
    // Spelled through `..`, still protected.
    assert!(ask(g.check("s1", "writeFile", W, Some("src/../.git/hooks/pre-commit"))).protected);
}

#[test]
fn an_always_answer_to_a_protected_prompt_grants_one_call() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some(".github/workflows/ci.yml")));
    g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    assert!(g.always_grants().is_empty(), "nothing persisted");
    assert!(!r.root.join(ALLOW_FILE).exists());
    let c = g.check("s1", "writeFile", W, Some(".github/workflows/ci.yml"));
    assert_eq!(allowed(&c), Some(Some(GrantScope::Once)));
    g.consume_once("s1", "writeFile", W, Some(".github/workflows/ci.yml"));
    ask(g.check("s1", "writeFile", W, Some(".github/workflows/ci.yml")));
    // A session answer is once too, and so is a forged `protected: false`.
    let mut req = ask(g.check("s1", "writeFile", W, Some(".env")));
    req.protected = false;
    g.answer(&req, PermissionAnswer::Session, "alice").unwrap();
    g.consume_once("s1", "writeFile", W, Some(".env"));
    ask(g.check("s1", "writeFile", W, Some(".env")));
    ask(g.check("s1", "writeFile", W, Some("src/a.py")));
}

#[test]
fn the_grant_file_and_noctune_config_are_forbidden() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Always, "alice").unwrap();
    for p in [
        ".noctune_cache/studio_allow.json",
        ".NOCTUNE_CACHE/Studio_Allow.json",
        "noctune.toml",
        "pyproject.toml",
        "Noctune.TOML",
        ".noctune_cache/runs/20261125T101000Z-1/state/approvals/x.decision.json",
        ".noctune_cache/studio_edits/journal.jsonl",
        ".noctune_cache/.gitignore",
        ".noctune_cache/studio_chat/sessions/s1.json",
        ".noctune_cache/notes.md",
    ] {
        match g.check("s1", "writeFile", W, Some(p)) {
            Check::Forbidden { code, message } => {
                assert_eq!(code, "write_forbidden");
                assert!(message.contains(p), "{message}");
            }
            other => panic!("{p}: {other:?}"),
        }
    }
    // No answer can grant it either.
    let fake = PermissionRequest {
        id: "x".into(),
        session_id: "s1".into(),
        tool: "writeFile".into(),
        class: W,
        path: Some("noctune.toml".into()),
        protected: false,
        summary: "writeFile noctune.toml".into(),
        preview: None,
    };
    assert!(g.answer(&fake, PermissionAnswer::Once, "alice").is_err());
    assert!(matches!(
        g.check("s1", "writeFile", W, Some("../outside.txt")),
        Check::Forbidden { .. }
    ));
}

#[test]
fn writes_under_the_cache_scratch_folder_need_no_grant() {
    let r = Repo::new();
    let g = r.gate();
    for p in [
        ".noctune_cache/scratch/todo.md",
        ".noctune_cache/scratch/notes/plan.json",
    ] {
        assert_eq!(
            allowed(&g.check("s1", "writeFile", W, Some(p))),
            Some(None),
            "{p}"
        );
    }
    ask(g.check("s1", "writeFile", W, Some("noctune_cache/x.md")));
    // Only the repository's own cache: one deeper down is protected.
    assert!(
        ask(g.check(
            "s1",
            "writeFile",
            W,
            Some("sub/.noctune_cache/scratch/x.md")
        ))
        .protected
    );
}

#[test]
fn grants_denials_revokes_and_uses_are_audited_in_sqlite() {
    let r = Repo::new();
    let g = r.gate();
    let req = ask(g.check("s1", "writeFile", W, Some("src/a.py")));
    g.answer(&req, PermissionAnswer::Deny, "alice").unwrap();
    g.answer(&req, PermissionAnswer::Once, "alice").unwrap();
    g.consume_once("s1", "writeFile", W, Some("src/a.py"));
    let req = ask(g.check("s2", "noctuneStart", ToolClass::Run, None));
    g.answer(&req, PermissionAnswer::Session, "bob").unwrap();
    let req = ask(g.check("s2", "noctuneDecide", ToolClass::Decide, None));
    g.answer(&req, PermissionAnswer::Always, "bob").unwrap();
    g.revoke(ToolClass::Decide, None, "carol").unwrap();

    let store = AuditStore::open(&r.db).unwrap();
    let mut recs = store.grants(&r.root_str(), 100).unwrap();
    recs.reverse(); // oldest first
    let summary: Vec<(&str, &str, &str, &str)> = recs
        .iter()
        .map(|g| {
            (
                g.action.as_str(),
                g.scope.as_str(),
                g.tool_class.as_str(),
                g.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("denied", "once", "write", "alice"),
            ("granted", "once", "write", "alice"),
            ("used", "once", "write", "assistant"),
            ("granted", "session", "run", "bob"),
            ("granted", "always", "decide", "bob"),
            ("revoked", "always", "decide", "carol"),
        ]
    );
    assert_eq!(recs[0].path.as_deref(), Some("src/a.py"));
    assert_eq!(recs[0].session_id.as_deref(), Some("s1"));
    assert_eq!(recs[0].tool, "writeFile");
    assert_eq!(recs[3].session_id.as_deref(), Some("s2"));
    assert!(
        recs.iter()
            .all(|g| g.ts.ends_with('Z') && g.repo_root == r.root_str())
    );
}

#[test]
fn answers_parse_from_words() {
    for (w, a) in [
        ("once", PermissionAnswer::Once),
        ("session", PermissionAnswer::Session),
        ("always", PermissionAnswer::Always),
        ("deny", PermissionAnswer::Deny),
    ] {
        assert_eq!(w.parse::<PermissionAnswer>().unwrap(), a);
    }
    let e = "sure".parse::<PermissionAnswer>().unwrap_err().to_string();
    assert!(e.contains("once, session, always or deny"), "{e}");
    assert_eq!(
        serde_json::to_string(&PermissionAnswer::Always).unwrap(),
        "\"always\""
    );
    assert_eq!(
        serde_json::to_string(&GrantScope::Session).unwrap(),
        "\"session\""
    );
}
