//! The file tools through the `Tool` trait on real files: edits with a backup and undo,
//! conflicts, line ranges, caps, .gitignore, search, and the editor's edit sink and buffers.

use noctune_chat::backups::{self, BackupError};
use noctune_chat::tool::{BufferOverlay, EditSink, Tool, ToolClass, ToolContext, ToolError};
use noctune_chat::tools::files::file_tools;
use noctune_sandbox::Sandbox;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ctx: ToolContext,
    tools: HashMap<&'static str, Arc<dyn Tool>>,
}

impl Repo {
    fn new(files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        for (p, c) in files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let ctx = ToolContext {
            repo_root: root.clone(),
            sandbox: Arc::new(Sandbox::new(vec![root.clone()]).unwrap()),
            session_id: "s1".into(),
            edit_sink: None,
            overlay: None,
            read_stamps: Default::default(),
        };
        let tools = file_tools().into_iter().map(|t| (t.name(), t)).collect();
        Repo {
            _dir: dir,
            root,
            ctx,
            tools,
        }
    }
    fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.tools[tool].call(&self.ctx, &args)
    }
    fn ok(&self, tool: &str, args: Value) -> Value {
        self.call(tool, args.clone())
            .unwrap_or_else(|e| panic!("{tool} {args}: {e}"))
    }
    fn err(&self, tool: &str, args: Value) -> ToolError {
        match self.call(tool, args.clone()) {
            Err(e) => e,
            Ok(v) => panic!("{tool} {args} should fail, got {v}"),
        }
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_tools_have_their_names_classes_and_schemas() {
    let r = Repo::new(&[]);
    let mut names: Vec<_> = r.tools.keys().copied().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "editFile",
            "listFiles",
            "readFile",
            "replaceLines",
            "search",
            "writeFile"
        ]
    );
    for (name, class) in [
        ("readFile", ToolClass::Read),
        ("listFiles", ToolClass::Read),
        ("search", ToolClass::Read),
        ("writeFile", ToolClass::Write),
        ("replaceLines", ToolClass::Write),
    ] {
        let t = &r.tools[name];
        assert_eq!(t.class(), class, "{name}");
        assert_eq!(t.parameters()["type"], "object", "{name}");
        assert!(!t.description().is_empty());
    }
    assert_eq!(
        r.tools["writeFile"].target_path(&json!({"path": "src/a.py", "content": ""})),
        Some("src/a.py".into())
    );
}

#[test]
fn write_makes_a_backup_and_undo_restores_the_previous_content() {
    let r = Repo::new(&[("src/a.py", "one\n")]);
    r.ok("readFile", json!({"path": "src/a.py"}));
    let out = r.ok("writeFile", json!({"path": "src/a.py", "content": "two\n"}));
    assert_eq!(r.read("src/a.py"), "two\n");
    assert_eq!(out["path"], "src/a.py");
    assert_eq!(out["bytes"], 4);
    assert_eq!(out["created"], false);
    let backup = out["backup"].as_str().unwrap();
    assert!(
        backup.starts_with(".noctune_cache/studio_edits/backups/"),
        "{backup}"
    );
    assert!(backup.ends_with("/src/a.py"));
    assert_eq!(r.read(backup), "one\n");
    let diff = out["diff"].as_str().unwrap();
    assert!(
        diff.contains("--- a/src/a.py") && diff.contains("-one") && diff.contains("+two"),
        "{diff}"
    );
    let journal = r.read(".noctune_cache/studio_edits/journal.jsonl");
    let line: Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(line["session_id"], "s1");
    assert_eq!(line["path"], "src/a.py");
    assert_eq!(line["existed_before"], true);
    assert_eq!(line["backup"], backup);

    let undo = backups::undo_last(&r.root, Some("s1")).unwrap();
    assert_eq!(undo.path, "src/a.py");
    assert!(!undo.removed);
    assert_eq!(r.read("src/a.py"), "one\n");
    assert!(matches!(
        backups::undo_last(&r.root, Some("s1")),
        Err(BackupError::NothingToUndo { .. })
    ));
}

#[test]
fn undo_removes_a_file_the_edit_created() {
    let r = Repo::new(&[]);
    let out = r.ok(
        "writeFile",
        json!({"path": "new/sub/b.py", "content": "print(1)\n"}),
    );
    assert_eq!(out["created"], true);
    assert_eq!(out["backup"], Value::Null);
    assert_eq!(r.read("new/sub/b.py"), "print(1)\n");
    let undo = backups::undo_last(&r.root, None).unwrap();
    assert!(undo.removed);
    assert!(!r.root.join("new/sub/b.py").exists());
}

#[test]
fn a_second_undo_restores_the_edit_before() {
    let r = Repo::new(&[("a.txt", "one\n")]);
    r.ok("readFile", json!({"path": "a.txt"}));
    r.ok("writeFile", json!({"path": "a.txt", "content": "two\n"}));
    r.ok("writeFile", json!({"path": "a.txt", "content": "three\n"}));
    // Another session's edit in between is not this session's to undo.
    let mut other = r.ctx.clone();
    other.session_id = "s2".into();
    r.tools["writeFile"]
        .call(&other, &json!({"path": "b.txt", "content": "x"}))
        .unwrap();
    backups::undo_last(&r.root, Some("s1")).unwrap();
    assert_eq!(r.read("a.txt"), "two\n");
    backups::undo_last(&r.root, Some("s1")).unwrap();
    assert_eq!(r.read("a.txt"), "one\n");
    assert!(r.root.join("b.txt").exists());
    assert!(backups::undo_last(&r.root, Some("s1")).is_err());
}

#[test]
fn undo_refuses_to_throw_away_later_changes_unless_forced() {
    let r = Repo::new(&[("a.txt", "one\n")]);
    r.ok("readFile", json!({"path": "a.txt"}));
    r.ok("writeFile", json!({"path": "a.txt", "content": "two\n"}));
    std::fs::write(r.root.join("a.txt"), "user edit\n").unwrap();
    let e = backups::undo_last(&r.root, None).unwrap_err();
    assert!(matches!(e, BackupError::ChangedSince { .. }), "{e}");
    assert!(e.to_string().contains("a.txt"));
    assert_eq!(r.read("a.txt"), "user edit\n");
    backups::undo_last_with(&r.root, None, true).unwrap();
    assert_eq!(r.read("a.txt"), "one\n");
}

#[test]
fn an_edit_of_a_file_changed_since_it_was_read_is_a_conflict() {
    let r = Repo::new(&[("a.py", "a = 1\nb = 2\n")]);
    r.ok("readFile", json!({"path": "a.py"}));
    std::fs::write(r.root.join("a.py"), "a = 1\nb = 3\n").unwrap();
    let e = r.err("writeFile", json!({"path": "a.py", "content": "model\n"}));
    assert_eq!(e.code, "conflict");
    assert!(e.message.contains("read it again"), "{}", e.message);
    let e = r.err(
        "replaceLines",
        json!({"path": "a.py", "start_line": 1, "end_line": 1, "new_text": "a = 9"}),
    );
    assert_eq!(e.code, "conflict");
    assert_eq!(r.read("a.py"), "a = 1\nb = 3\n", "nothing overwritten");
    assert!(
        !r.root
            .join(".noctune_cache/studio_edits/journal.jsonl")
            .exists()
    );
    // After a fresh read the edit goes through.
    r.ok("readFile", json!({"path": "a.py"}));
    r.ok(
        "replaceLines",
        json!({"path": "a.py", "start_line": 1, "end_line": 1, "new_text": "a = 9"}),
    );
    assert_eq!(r.read("a.py"), "a = 9\nb = 3\n");
}

#[test]
fn replace_lines_needs_a_read_first() {
    let r = Repo::new(&[("a.py", "x\n")]);
    let e = r.err(
        "replaceLines",
        json!({"path": "a.py", "start_line": 1, "end_line": 1, "new_text": "y"}),
    );
    assert_eq!(e.code, "read_first");
    assert_eq!(r.read("a.py"), "x\n");
}

#[test]
fn replace_lines_edits_ranges() {
    let r = Repo::new(&[("m.py", "l1\nl2\nl3\nl4\nl5\n")]);
    r.ok("readFile", json!({"path": "m.py"}));
    let out = r.ok(
        "replaceLines",
        json!({"path": "m.py", "start_line": 2, "end_line": 3, "new_text": "X\nY\nZ"}),
    );
    assert_eq!(r.read("m.py"), "l1\nX\nY\nZ\nl4\nl5\n");
    assert_eq!(out["inserted_lines"], 3);
    assert_eq!(out["new_end_line"], 4);
    let diff = out["diff"].as_str().unwrap();
    assert!(diff.contains("-l2") && diff.contains("+Z"), "{diff}");
    // The tool's own write refreshed the read stamp: no re-read needed for the next edit.
    r.ok(
        "replaceLines",
        json!({"path": "m.py", "start_line": "6", "end_line": "6", "new_text": ""}),
    );
    assert_eq!(r.read("m.py"), "l1\nX\nY\nZ\nl4\n");
    r.ok(
        "replaceLines",
        json!({"path": "m.py", "start_line": 1, "end_line": 0, "new_text": "# head\n"}),
    );
    assert_eq!(r.read("m.py"), "# head\nl1\nX\nY\nZ\nl4\n");
    let e = r.err(
        "replaceLines",
        json!({"path": "m.py", "start_line": 9, "end_line": 9, "new_text": "q"}),
    );
    assert_eq!(e.code, "bad_range");
    assert!(
        e.message.contains("7 lines") || e.message.contains("6 lines"),
        "{}",
        e.message
    );
    let e = r.err(
        "replaceLines",
        json!({"path": "nope.py", "start_line": 1, "end_line": 1, "new_text": "q"}),
    );
    assert_eq!(e.code, "not_found");
}

#[test]
fn read_file_ranges_numbering_and_caps() {
    let many: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
    let wide: String = (0..400)
        .map(|_| format!("{}\n", "w".repeat(1000)))
        .collect();
    let r = Repo::new(&[("many.txt", &many), ("wide.txt", &wide), ("empty.txt", "")]);
    let out = r.ok(
        "readFile",
        json!({"path": "many.txt", "start_line": 12, "end_line": 14}),
    );
    assert_eq!(out["content"], "12: line 12\n13: line 13\n14: line 14\n");
    assert_eq!(
        (out["start_line"].as_u64(), out["end_line"].as_u64()),
        (Some(12), Some(14))
    );
    assert_eq!(out["total_lines"], 3000);
    assert_eq!(out["truncated"], false);

    let all = r.ok("readFile", json!({"path": "many.txt"}));
    assert_eq!(all["truncated"], true);
    assert_eq!(all["end_line"], 2000);
    assert!(all["hint"].as_str().unwrap().contains("start_line=2001"));
    let next = r.ok("readFile", json!({"path": "many.txt", "start_line": 2001}));
    assert_eq!(
        (next["end_line"].as_u64(), next["truncated"].as_bool()),
        (Some(3000), Some(false))
    );

    let w = r.ok("readFile", json!({"path": "wide.txt"}));
    assert_eq!(w["truncated"], true);
    assert!(w["content"].as_str().unwrap().len() <= 256 * 1024);
    assert!(w["end_line"].as_u64().unwrap() < 400);

    let e = r.ok("readFile", json!({"path": "empty.txt"}));
    assert_eq!(
        (e["total_lines"].as_u64(), e["content"].as_str()),
        (Some(0), Some(""))
    );

    let bad = r.err("readFile", json!({"path": "many.txt", "start_line": 3001}));
    assert_eq!(bad.code, "bad_range");
    assert!(bad.message.contains("3000 lines"));
    let missing = r.err("readFile", json!({"path": "nope.txt"}));
    assert_eq!(missing.code, "not_found");
    let args = r.err("readFile", json!({"start_line": 1}));
    assert_eq!(args.code, "bad_arguments");
}

#[test]
fn read_file_refuses_binary_and_paths_outside() {
    let r = Repo::new(&[]);
    std::fs::write(r.root.join("blob.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    assert_eq!(
        r.err("readFile", json!({"path": "blob.bin"})).code,
        "binary_file"
    );
    for p in [
        "../../etc/passwd",
        "/etc/passwd",
        "%2e%2e%2fetc%2fpasswd",
        "~/.ssh/id_rsa",
    ] {
        let e = r.err("readFile", json!({"path": p}));
        assert_eq!(e.code, "path_not_allowed", "{p}");
    }
}

#[test]
fn writes_through_a_symlink_out_of_the_repository_are_refused() {
    let r = Repo::new(&[]);
    let outside = r.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim.txt"), "safe\n").unwrap();
    std::os::unix::fs::symlink(outside.join("victim.txt"), r.root.join("v.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, r.root.join("out")).unwrap();
    let e = r.err("writeFile", json!({"path": "v.txt", "content": "pwned"}));
    assert_eq!(e.code, "path_not_allowed");
    let e = r.err(
        "writeFile",
        json!({"path": "out/new.txt", "content": "pwned"}),
    );
    assert_eq!(e.code, "path_not_allowed");
    assert_eq!(
        std::fs::read_to_string(outside.join("victim.txt")).unwrap(),
        "safe\n"
    );
    assert!(!outside.join("new.txt").exists());
}

#[test]
fn writes_are_atomic_and_keep_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let r = Repo::new(&[("bin/run.sh", "#!/bin/sh\n")]);
    std::fs::set_permissions(
        r.root.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    r.ok(
        "writeFile",
        json!({"path": "bin/run.sh", "content": "#!/bin/sh\necho hi\n"}),
    );
    let mode = std::fs::metadata(r.root.join("bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let left: Vec<_> = std::fs::read_dir(r.root.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["run.sh"], "no temp file left behind");
    // Writing identical content is a no-op without a backup.
    r.ok("readFile", json!({"path": "bin/run.sh"}));
    let same = r.ok(
        "writeFile",
        json!({"path": "bin/run.sh", "content": "#!/bin/sh\necho hi\n"}),
    );
    assert_eq!(same["unchanged"], true);
}

#[test]
fn list_files_respects_gitignore_and_skips_internal_folders() {
    let r = Repo::new(&[
        (".gitignore", "build/\n*.log\n"),
        ("src/main.py", ""),
        ("src/util/helpers.py", ""),
        ("tests/test_main.py", ""),
        ("build/out.py", ""),
        ("debug.log", ""),
        (".git/config", ""),
        (".noctune_cache/x.json", ""),
        (".github/workflows/ci.yml", ""),
        ("README.md", ""),
    ]);
    let out = r.ok("listFiles", json!({}));
    assert_eq!(
        strings(&out["files"]),
        [
            ".github/workflows/ci.yml",
            ".gitignore",
            "README.md",
            "src/main.py",
            "src/util/helpers.py",
            "tests/test_main.py"
        ]
    );
    assert_eq!(out["truncated"], false);
    let py = r.ok("listFiles", json!({"glob": "*.py"}));
    assert_eq!(
        strings(&py["files"]),
        ["src/main.py", "src/util/helpers.py", "tests/test_main.py"]
    );
    let by_name = r.ok("listFiles", json!({"glob": "test_*.py"}));
    assert_eq!(strings(&by_name["files"]), ["tests/test_main.py"]);
    let sub = r.ok("listFiles", json!({"path": "src", "glob": "src/**/*.py"}));
    assert_eq!(
        strings(&sub["files"]),
        ["src/main.py", "src/util/helpers.py"]
    );
    let capped = r.ok("listFiles", json!({"max": 2}));
    assert_eq!(capped["count"], 2);
    assert_eq!(capped["truncated"], true);
    assert!(capped["hint"].is_string());
    assert_eq!(
        r.err("listFiles", json!({"path": "../"})).code,
        "path_not_allowed"
    );
    assert_eq!(
        r.err("listFiles", json!({"glob": "a{"})).code,
        "bad_arguments"
    );
}

#[test]
fn search_literal_regex_glob_case_and_cap() {
    let r = Repo::new(&[
        (".gitignore", "ignored/\n"),
        ("src/a.py", "def alpha():\n    return 1\n# TODO: beta\n"),
        ("src/b.py", "x = alpha()\ny = a.b\n"),
        ("docs/notes.md", "alpha and Alpha\n"),
        ("ignored/c.py", "alpha\n"),
        (".noctune_cache/d.py", "alpha\n"),
    ]);
    let out = r.ok("search", json!({"pattern": "alpha"}));
    assert_eq!(
        strings(&out["matches"]),
        [
            "docs/notes.md:1: alpha and Alpha",
            "src/a.py:1: def alpha():",
            "src/b.py:1: x = alpha()"
        ]
    );
    assert_eq!(out["truncated"], false);

    let re = r.ok("search", json!({"pattern": r"^\s+return \d"}));
    assert_eq!(strings(&re["matches"]), ["src/a.py:2:     return 1"]);
    // As a literal, `.` is only a dot.
    let lit = r.ok("search", json!({"pattern": "a.b", "literal": true}));
    assert_eq!(strings(&lit["matches"]), ["src/b.py:2: y = a.b"]);
    let glob = r.ok("search", json!({"pattern": "alpha", "glob": "*.md"}));
    assert_eq!(
        strings(&glob["matches"]),
        ["docs/notes.md:1: alpha and Alpha"]
    );
    let path = r.ok("search", json!({"pattern": "alpha", "path": "src"}));
    assert_eq!(path["count"], 2);
    let ci = r.ok(
        "search",
        json!({"pattern": "ALPHA", "case_insensitive": true, "glob": "docs/*"}),
    );
    assert_eq!(ci["count"], 1);
    let none = r.ok("search", json!({"pattern": "ALPHA"}));
    assert_eq!(none["count"], 0);
    assert!(none["hint"].is_string());

    let capped = r.ok("search", json!({"pattern": "alpha", "max_results": 2}));
    assert_eq!(
        strings(&capped["matches"]),
        [
            "docs/notes.md:1: alpha and Alpha",
            "src/a.py:1: def alpha():"
        ],
        "the first results in path order, not the first found"
    );
    assert_eq!(capped["truncated"], true);

    let bad = r.err("search", json!({"pattern": "(unclosed"}));
    assert_eq!(bad.code, "bad_pattern");
    assert!(bad.message.contains("literal"));
}

#[test]
fn search_is_deterministic_and_exact_under_the_cap_on_many_files() {
    let mut files = Vec::new();
    for d in 0..20 {
        for f in 0..30 {
            let body: String = (0..5)
                .map(|l| format!("needle {d} {f} {l}\nhay\n"))
                .collect();
            files.push((format!("d{d:02}/f{f:02}.txt"), body));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let r = Repo::new(&refs);
    let first = r.ok("search", json!({"pattern": "needle", "max_results": 250}));
    assert_eq!(first["count"], 250);
    assert_eq!(first["truncated"], true);
    let m = strings(&first["matches"]);
    assert_eq!(m[0], "d00/f00.txt:1: needle 0 0 0");
    assert_eq!(m[5], "d00/f01.txt:1: needle 0 1 0");
    assert_eq!(m[249], "d01/f19.txt:9: needle 1 19 4");
    for _ in 0..5 {
        assert_eq!(
            r.ok("search", json!({"pattern": "needle", "max_results": 250}))["matches"],
            first["matches"]
        );
    }
    let all = r.ok(
        "search",
        json!({"pattern": "needle 19 29", "max_results": 1000}),
    );
    assert_eq!(all["count"], 5);
    assert_eq!(all["truncated"], false);
}

#[test]
fn a_fifo_in_the_tree_does_not_block_listing_or_search() {
    let r = Repo::new(&[("a.txt", "find me\n")]);
    let c = std::ffi::CString::new(r.root.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = r.ctx.clone();
    let tools = r.tools.clone();
    std::thread::spawn(move || {
        let s = tools["search"]
            .call(&ctx, &json!({"pattern": "find"}))
            .unwrap();
        let l = tools["listFiles"].call(&ctx, &json!({})).unwrap();
        let rd = tools["readFile"].call(&ctx, &json!({"path": "pipe"}));
        let _ = tx.send((s, l, rd));
    });
    let (s, l, rd) = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("a FIFO blocked a tool");
    assert_eq!(strings(&s["matches"]), ["a.txt:1: find me"]);
    assert_eq!(strings(&l["files"]), ["a.txt"]);
    assert_eq!(rd.unwrap_err().code, "not_a_file");
}

/// Records edits instead of writing, like the LSP surface's `workspace/applyEdit`.
#[derive(Default)]
struct RecordingSink {
    calls: Mutex<Vec<(PathBuf, String, String)>>,
    reject: bool,
}

impl EditSink for RecordingSink {
    fn replace_file(&self, path: &Path, old: &str, new: &str) -> Result<(), String> {
        if self.reject {
            return Err("the editor declined".into());
        }
        self.calls
            .lock()
            .unwrap()
            .push((path.to_path_buf(), old.to_string(), new.to_string()));
        Ok(())
    }
}

struct Buffers(HashMap<PathBuf, String>);

impl BufferOverlay for Buffers {
    fn text_of(&self, path: &Path) -> Option<String> {
        self.0.get(path).cloned()
    }
}

#[test]
fn the_edit_sink_is_used_when_present() {
    let mut r = Repo::new(&[("a.py", "old\n")]);
    let sink = Arc::new(RecordingSink::default());
    r.ctx.edit_sink = Some(sink.clone());
    r.ok("readFile", json!({"path": "a.py"}));
    let out = r.ok("writeFile", json!({"path": "a.py", "content": "new\n"}));
    let calls = sink.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [(
            r.root.join("a.py"),
            "old\n".to_string(),
            "new\n".to_string()
        )]
    );
    assert_eq!(
        r.read("a.py"),
        "old\n",
        "the sink, not the disk, got the edit"
    );
    assert!(out["backup"].is_string(), "backed up all the same");

    let mut r2 = Repo::new(&[("a.py", "old\n")]);
    r2.ctx.edit_sink = Some(Arc::new(RecordingSink {
        reject: true,
        ..Default::default()
    }));
    let e = r2.err("writeFile", json!({"path": "a.py", "content": "new\n"}));
    assert_eq!(e.code, "edit_rejected");
    assert!(e.message.contains("declined"));
    assert!(
        matches!(
            backups::undo_last(&r2.root, None),
            Err(BackupError::NothingToUndo { .. })
        ),
        "a rejected edit leaves nothing to undo"
    );
}

#[test]
fn unsaved_buffers_are_read_and_guard_edits() {
    let mut r = Repo::new(&[("a.py", "on disk\n")]);
    let abs = r.root.join("a.py");
    r.ctx.overlay = Some(Arc::new(Buffers(HashMap::from([(
        abs,
        "in buffer\nline 2\n".to_string(),
    )]))));
    let out = r.ok("readFile", json!({"path": "a.py"}));
    assert_eq!(out["content"], "1: in buffer\n2: line 2\n");
    assert!(out["source"].as_str().unwrap().contains("buffer"));
    // The stamp is of the buffer: the edit is based on what the model saw.
    r.ok(
        "replaceLines",
        json!({"path": "a.py", "start_line": 2, "end_line": 2, "new_text": "edited"}),
    );
    assert_eq!(r.read("a.py"), "in buffer\nedited\n");
}
