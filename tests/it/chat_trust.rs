//! What a hostile model cannot do once the user has granted it something (issue 10, holes 4
//! and 5), through the facade as every surface calls it, with the scripted model making the
//! calls: protected names ask every time even under a session grant, invisible and reordering
//! characters are refused by name, Noctune's own cache is not writable (only its scratch
//! folder), a nested `.noctune_cache` is no exemption, secret files are read only when the
//! user says so, the cache's `.gitignore` is restored on every start, and a run's commit never
//! carries the cache.

use crate::chat_turns::{Turn, profile_toml, send_on};
use crate::support::harness::Harness;
use crate::support::llm_server::{Reply, ScriptedLlm};
use crate::support::repo::FixtureRepo;
use noctune_studio::chat::{
    ChatEvent, ChatService, NoPrompter, PermissionAnswer, PermissionRequest, Prompter,
};
use noctune_studio::{RunStatus, Studio};
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

const SECRET: &str = "sk-live-4f9a2c1e";
const CACHE_IGNORE: &str = "# Noctune Studio's cache: never committed\n*\n";

/// Every kind of protected name a model wrote with no further prompt before (plus the ones
/// that already prompted), at the top and deeper down.
const PROTECTED_WRITES: [&str; 26] = [
    ".gitattributes",
    ".gitmodules",
    ".mcp.json",
    ".claude/settings.json",
    ".cursor/rules/always.mdc",
    ".github/actions/setup/action.yml",
    ".github/workflows/ci.yml",
    ".github/dependabot.yml",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
    ".git-credentials",
    ".devcontainer/devcontainer.json",
    ".idea/workspace.xml",
    ".vscode/settings.json",
    ".envrc",
    ".env.local",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "certs/server.pem",
    "certs/ca.crt",
    "deploy/id_rsa",
    "shapes/.GitAttributes",
    ".git/hooks/pre-commit",
    ".git/.noctune_cache/x",
    ".github/workflows/.noctune_cache/ci.yml",
];

/// Answers with `answer(request)` and keeps every request it was asked.
struct Recorder {
    asked: Mutex<Vec<PermissionRequest>>,
    answer: fn(&PermissionRequest) -> PermissionAnswer,
}

impl Recorder {
    fn new(answer: fn(&PermissionRequest) -> PermissionAnswer) -> Recorder {
        Recorder {
            asked: Mutex::new(Vec::new()),
            answer,
        }
    }
    fn take(&self) -> Vec<PermissionRequest> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

impl Prompter for Recorder {
    fn ask<'a>(
        &'a self,
        req: &'a PermissionRequest,
    ) -> Pin<Box<dyn Future<Output = PermissionAnswer> + Send + 'a>> {
        self.asked.lock().unwrap().push(req.clone());
        Box::pin(std::future::ready((self.answer)(req)))
    }
    fn actor(&self) -> String {
        "tester".into()
    }
}

/// A repository holding a `.env` secret, the scripted model, and chat through the facade.
struct Env {
    llm: ScriptedLlm,
    repo: FixtureRepo,
    db: tempfile::TempDir,
    service: Arc<ChatService>,
}

impl Env {
    fn new() -> Env {
        let llm = ScriptedLlm::start(Vec::<Reply>::new());
        let toml = profile_toml(&llm.base_url(), "native", 32768);
        let env_file = format!("API_TOKEN={SECRET}\n");
        let repo = FixtureRepo::new("pyproj", &[("noctune.toml", &toml), (".env", &env_file)]);
        let db = tempfile::Builder::new()
            .prefix("noctune-trust-db-")
            .tempdir()
            .unwrap();
        let studio = Studio::for_repository(&db.path().join("audit.sqlite"), &repo.path())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let service = studio
            .chat(&repo.path())
            .unwrap_or_else(|e| panic!("{e:?}"));
        Env {
            llm,
            repo,
            db,
            service,
        }
    }

    fn db(&self) -> PathBuf {
        self.db.path().join("audit.sqlite")
    }

    /// Queues one round with these `(path, content)` writes, then a closing answer.
    fn script_writes(&self, writes: &[(&str, &str)]) {
        let calls: Vec<(String, String, String)> = writes
            .iter()
            .enumerate()
            .map(|(i, (p, c))| {
                (
                    format!("w{i}"),
                    "writeFile".to_string(),
                    json!({"path": p, "content": c}).to_string(),
                )
            })
            .collect();
        self.llm.push(Reply::tool_calls(calls));
        self.llm.push(Reply::text(&["done"]));
    }

    fn script_call(&self, name: &str, args: serde_json::Value) {
        self.llm
            .push(Reply::tool_call("c1", name, &args.to_string()));
        self.llm.push(Reply::text(&["done"]));
    }

    async fn send(&self, session: &str, prompter: &dyn Prompter) -> Turn {
        send_on(&self.service, session, "go", prompter).await
    }

    fn file(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.repo.path().join(rel)).ok()
    }
}

/// The result the model saw for each call, in order: `(ok, result)`.
fn results(turn: &Turn) -> Vec<(bool, serde_json::Value)> {
    turn.results()
        .into_iter()
        .map(|(_, ok, r)| (ok, r))
        .collect()
}

fn prompted_paths(turn: &Turn) -> Vec<String> {
    turn.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::PermissionRequest(r) => r.path.clone(),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn under_a_session_grant_every_protected_name_still_asks_every_time() {
    let env = Env::new();
    // The user allows writes for the session.
    env.script_writes(&[("shapes/notes.txt", "ok\n")]);
    let session = Recorder::new(|_| PermissionAnswer::Session);
    let t = env.send("s1", &session).await;
    assert!(results(&t)[0].0, "{:?}", t.results());
    assert_eq!(session.take().len(), 1);

    // Every protected name asks, with a protected prompt, though the session grant holds (a
    // plain write goes through unasked) and though the user answers "always".
    let mut writes: Vec<(&str, &str)> = PROTECTED_WRITES.iter().map(|p| (*p, "one\n")).collect();
    writes.push(("shapes/other.txt", "plain\n"));
    env.script_writes(&writes);
    let always = Recorder::new(|_| PermissionAnswer::Always);
    let t = env.send("s1", &always).await;
    let asked = always.take();
    let asked_paths: Vec<&str> = asked.iter().filter_map(|r| r.path.as_deref()).collect();
    assert_eq!(
        asked_paths, PROTECTED_WRITES,
        "one prompt per protected name"
    );
    assert!(asked.iter().all(|r| r.protected), "{asked:#?}");
    let res = results(&t);
    assert!(res.iter().all(|(ok, _)| *ok), "{res:#?}");
    for p in PROTECTED_WRITES {
        assert_eq!(env.file(p).as_deref(), Some("one\n"), "{p}");
    }
    assert_eq!(env.file("shapes/other.txt").as_deref(), Some("plain\n"));
    assert!(
        env.service.always_grants().is_empty(),
        "an always answer to a protected prompt is one call"
    );

    // Again in the same session: each asks again, and with nobody to answer none is written.
    let writes: Vec<(&str, &str)> = PROTECTED_WRITES.iter().map(|p| (*p, "two\n")).collect();
    env.script_writes(&writes);
    let t = env.send("s1", &NoPrompter).await;
    assert_eq!(prompted_paths(&t), PROTECTED_WRITES);
    for (p, (ok, r)) in PROTECTED_WRITES.iter().zip(results(&t)) {
        assert!(!ok, "{p}: {r}");
        assert_eq!(r["error"], "write_not_allowed", "{p}: {r}");
        assert_eq!(env.file(p).as_deref(), Some("one\n"), "{p}");
    }
}

#[tokio::test]
async fn names_with_invisible_or_reordering_characters_are_refused_by_code_point() {
    let env = Env::new();
    let hidden = [
        ('\u{202E}', "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ('\u{200B}', "U+200B ZERO WIDTH SPACE"),
        ('\u{200D}', "U+200D ZERO WIDTH JOINER"),
        ('\u{200F}', "U+200F RIGHT-TO-LEFT MARK"),
        ('\u{202A}', "U+202A LEFT-TO-RIGHT EMBEDDING"),
        ('\u{2066}', "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ('\u{2069}', "U+2069 POP DIRECTIONAL ISOLATE"),
        ('\u{FEFF}', "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ('\u{00AD}', "U+00AD SOFT HYPHEN"),
        ('\n', "U+000A LINE FEED"),
        ('\u{1B}', "U+001B ESCAPE"),
    ];
    // In a file name, and in a folder name that would pass for a protected one.
    let paths: Vec<(String, char, &str)> = hidden
        .iter()
        .flat_map(|(c, label)| {
            [
                (format!("shapes/invoice{c}yp.exe"), *c, *label),
                (format!(".git{c}hub/workflows/ci.yml"), *c, *label),
            ]
        })
        .collect();
    let writes: Vec<(&str, &str)> = paths.iter().map(|(p, _, _)| (p.as_str(), "x\n")).collect();
    env.script_writes(&writes);
    // Even a user who allows everything for ever cannot allow these.
    let always = Recorder::new(|_| PermissionAnswer::Always);
    let t = env.send("s1", &always).await;
    assert!(always.take().is_empty(), "refused before anyone is asked");
    let res = results(&t);
    assert_eq!(res.len(), paths.len());
    for ((p, c, label), (ok, r)) in paths.iter().zip(res) {
        assert!(!ok, "{p:?}: {r}");
        assert_eq!(r["error"], "write_forbidden", "{p:?}: {r}");
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(label), "{p:?}: {message}");
        assert!(
            !message.contains(*c),
            "the name is shown escaped: {message:?}"
        );
        assert!(!env.repo.path().join(p).exists(), "{p:?}");
    }
}

#[tokio::test]
async fn the_cache_is_noctunes_own_except_its_scratch_folder() {
    let env = Env::new();
    let ignore = env.repo.path().join(".noctune_cache/.gitignore");
    env.script_writes(&[
        (".noctune_cache/.gitignore", "!*\n"),
        (".noctune_cache/sessions/x", "{}\n"),
        (".noctune_cache/studio_chat/sessions/forged.json", "{}\n"),
        (".noctune_cache/studio_allow.json", "{}\n"),
        (".noctune_cache/notes.md", "x\n"),
        (".noctune_cache/scratch/plan.md", "step 1\n"),
    ]);
    // No grant at all: the scratch file goes through, the rest is refused, nobody is asked.
    let t = env.send("s1", &NoPrompter).await;
    assert_eq!(t.permission_requests(), 0, "{:?}", t.events);
    let res = results(&t);
    for (ok, r) in &res[..5] {
        assert!(!ok, "{r}");
        assert_eq!(r["error"], "write_forbidden", "{r}");
    }
    assert!(res[5].0, "{:?}", res[5]);
    assert_eq!(
        env.file(".noctune_cache/scratch/plan.md").as_deref(),
        Some("step 1\n")
    );
    assert_eq!(std::fs::read_to_string(&ignore).unwrap(), CACHE_IGNORE);
    assert!(!env.repo.path().join(".noctune_cache/sessions/x").exists());
    assert!(!env.repo.path().join(".noctune_cache/notes.md").exists());
    // Nor with one.
    env.script_writes(&[(".noctune_cache/.gitignore", "!*\n")]);
    let t = env
        .send("s1", &Recorder::new(|_| PermissionAnswer::Always))
        .await;
    assert_eq!(results(&t)[0].1["error"], "write_forbidden");
    assert_eq!(std::fs::read_to_string(&ignore).unwrap(), CACHE_IGNORE);
    // Nothing of the cache shows in the user's `git status`.
    assert_eq!(env.repo.status(), Vec::<String>::new());
}

#[tokio::test]
async fn a_nested_noctune_cache_is_no_exemption() {
    let env = Env::new();
    env.script_writes(&[
        (".git/.noctune_cache/x", "x\n"),
        (".github/workflows/.noctune_cache/ci.yml", "on: push\n"),
        ("shapes/.noctune_cache/notes.md", "x\n"),
        ("shapes/.noctune_cache/studio_allow.json", "{}\n"),
    ]);
    let t = env.send("s1", &NoPrompter).await;
    let res = results(&t);
    assert_eq!(
        prompted_paths(&t),
        [
            ".git/.noctune_cache/x",
            ".github/workflows/.noctune_cache/ci.yml",
            "shapes/.noctune_cache/notes.md"
        ]
    );
    for (ok, r) in &res[..3] {
        assert!(!ok, "{r}");
        assert_eq!(r["error"], "write_not_allowed", "{r}");
    }
    assert_eq!(res[3].1["error"], "write_forbidden", "{:?}", res[3]);
    for p in [
        ".git/.noctune_cache/x",
        ".github/workflows/.noctune_cache/ci.yml",
        "shapes/.noctune_cache/notes.md",
    ] {
        assert!(env.file(p).is_none(), "{p}");
    }
}

#[tokio::test]
async fn reading_a_secret_asks_once_per_file_and_session() {
    let env = Env::new();
    let session_file = |id: &str| {
        std::fs::read_to_string(
            env.repo
                .path()
                .join(format!(".noctune_cache/studio_chat/sessions/{id}.json")),
        )
        .unwrap()
    };
    // Nobody to answer: the read is refused and the secret reaches neither the model nor the
    // saved transcript.
    env.script_call("readFile", json!({"path": ".env"}));
    let t = env.send("s1", &NoPrompter).await;
    assert_eq!(prompted_paths(&t), [".env"]);
    let (ok, r) = &results(&t)[0];
    assert!(!ok);
    assert_eq!(r["error"], "read_not_allowed", "{r}");
    assert!(!session_file("s1").contains(SECRET));
    assert!(!env.llm.last_request().unwrap().to_string().contains(SECRET));

    // Search does not return it either: the file is skipped, and the result says so.
    env.script_call("search", json!({"pattern": "API_TOKEN"}));
    let t = env.send("s1", &NoPrompter).await;
    assert_eq!(t.permission_requests(), 0);
    let (ok, r) = &results(&t)[0];
    assert!(ok, "{r}");
    assert_eq!(r["count"], 0, "{r}");
    assert_eq!(r["skipped_secret_files"], json!([".env"]), "{r}");
    assert!(!session_file("s1").contains(SECRET));

    // Allowed once: that file can be read for the rest of the session, asked no more.
    env.script_call("readFile", json!({"path": ".env"}));
    let once = Recorder::new(|_| PermissionAnswer::Once);
    let t = env.send("s1", &once).await;
    let asked = once.take();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].protected && asked[0].summary.contains("secret"),
        "{asked:?}"
    );
    assert!(
        results(&t)[0].1["content"]
            .as_str()
            .unwrap()
            .contains(SECRET)
    );
    env.script_call("search", json!({"pattern": "API_TOKEN", "path": ".env"}));
    let t = env.send("s1", &NoPrompter).await;
    assert_eq!(t.permission_requests(), 0);
    assert_eq!(results(&t)[0].1["count"], 1, "{:?}", t.results());
    // Another session asks again.
    env.script_call("readFile", json!({"path": "./.env"}));
    let t = env.send("s2", &NoPrompter).await;
    assert_eq!(prompted_paths(&t), [".env"]);
    assert_eq!(results(&t)[0].1["error"], "read_not_allowed");

    // Each answer is in the audit DB.
    let recs = noctune_store::AuditStore::open(&env.db())
        .unwrap()
        .grants(&env.repo.path().display().to_string(), 100)
        .unwrap();
    let reads: Vec<(&str, &str)> = recs
        .iter()
        .filter(|g| g.tool_class == "read")
        .map(|g| (g.action.as_str(), g.path.as_deref().unwrap_or("")))
        .collect();
    assert!(reads.contains(&("granted", ".env")), "{reads:?}");
    assert!(reads.contains(&("denied", ".env")), "{reads:?}");
}

#[test]
fn every_start_restores_the_caches_gitignore() {
    let env = Env::new();
    let ignore = env.repo.path().join(".noctune_cache/.gitignore");
    std::fs::create_dir_all(env.repo.path().join(".noctune_cache")).unwrap();
    // Overwritten (by anything: a person, another tool, an older Noctune), then a restart.
    std::fs::write(&ignore, "# nothing ignored\n").unwrap();
    std::fs::create_dir_all(env.repo.path().join(".noctune_cache/studio_chat/sessions")).unwrap();
    std::fs::write(
        env.repo
            .path()
            .join(".noctune_cache/studio_chat/sessions/s1.json"),
        SECRET,
    )
    .unwrap();
    Studio::for_repository(&env.db(), &env.repo.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&ignore).unwrap(), CACHE_IGNORE);
    // Deleted while the process runs: the next chat call puts it back.
    std::fs::remove_file(&ignore).unwrap();
    let studio = Studio::open(&env.db()).unwrap();
    studio.chat(&env.repo.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&ignore).unwrap(), CACHE_IGNORE);
    assert_eq!(env.repo.status(), Vec::<String>::new());
}

/// A fixer that writes into a `.noctune_cache` of the run's worktree (as a tool, a hook or an
/// un-ignored cache would), next to a real edit.
const LEAKY_PACK: &str = r#"
[tools.leaky]
command = ["sh", "-c", "mkdir -p .noctune_cache/studio_chat/sessions shapes/.noctune_cache && printf 'API_TOKEN=sk-live-4f9a2c1e' > .noctune_cache/studio_chat/sessions/s1.json && printf x > .noctune_cache/notes.md && printf x > shapes/.noctune_cache/y && printf '\nTIMEOUT = 30\n' >> shapes/util/helpers.py"]
stage = "fix"

[policy_packs.leaky]
allowed_globs = ["**"]
tools_allowed = ["leaky"]
proposer = { kind = "command", tools = ["leaky"] }
auto_approve = { enabled = true, max_risk = 100, max_lines = 100 }
"#;

#[test]
fn a_runs_commit_never_contains_the_cache() {
    let h = Harness::new("pyproj", &[("noctune.toml", LEAKY_PACK)]);
    // The user's cache has lost its ignore file.
    let ignore = h.repo.path().join(".noctune_cache/.gitignore");
    std::fs::create_dir_all(h.repo.path().join(".noctune_cache")).unwrap();
    std::fs::write(&ignore, "# nothing ignored\n").unwrap();
    let run = h.start("leaky");
    let done = h.wait_status(run.run_id.as_str(), RunStatus::Done, 120);
    let commits = h.repo.branch_commits(&done.branch);
    assert!(!commits.is_empty(), "the real edit is committed");
    assert!(
        h.repo
            .read_at(&done.branch, "shapes/util/helpers.py")
            .contains("TIMEOUT = 30")
    );
    let repo = h.repo.repo();
    for (sha, _) in &commits {
        let tree = repo
            .find_commit(git2::Oid::from_str(sha).unwrap())
            .unwrap()
            .tree()
            .unwrap();
        let mut cached = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let path = format!("{dir}{}", entry.name().unwrap_or(""));
            if path.split('/').any(|c| c == ".noctune_cache") {
                cached.push(path);
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
        assert!(cached.is_empty(), "commit {sha} has {cached:?}");
    }
    // Starting the run restored the ignore file.
    assert_eq!(std::fs::read_to_string(&ignore).unwrap(), CACHE_IGNORE);
    assert_eq!(h.repo.status(), Vec::<String>::new());
}
