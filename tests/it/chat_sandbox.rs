//! The sandbox against the attack list of issue 3 (§5 and its acceptance list), on real files:
//! each attack is refused with an error that names the input and says what is allowed, and
//! legitimate paths inside the root (relative, absolute, new files in new folders) pass.

use noctune_sandbox::{Intent, Sandbox, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

struct World {
    _dir: tempfile::TempDir,
    /// Canonical paths.
    root: PathBuf,
    outside: PathBuf,
    sandbox: Sandbox,
}

/// `<tmp>/repo` (the root), `<tmp>/outside` with a secret, `<tmp>/repo-evil` (a sibling with
/// the root's name as prefix), and symlinks from the root to the outside.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("repo");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("src/pkg")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(base.join("repo-evil")).unwrap();
    std::fs::write(root.join("src/pkg/a.py"), "x = 1\n").unwrap();
    std::fs::write(root.join("README.md"), "hi\n").unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret\n").unwrap();
    std::fs::write(base.join("repo-evil/loot.txt"), "loot\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link_out")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dir_out")).unwrap();
    std::os::unix::fs::symlink(outside.join("not_yet.txt"), root.join("dangling_out")).unwrap();
    std::os::unix::fs::symlink(root.join("src/pkg/a.py"), root.join("link_in")).unwrap();
    let sandbox = Sandbox::new(vec![root.clone()]).unwrap();
    World {
        _dir: dir,
        root,
        outside,
        sandbox,
    }
}

/// Refused, for every intent, with a message naming the input and the allowed root.
fn refused(w: &World, input: &str, intents: &[Intent]) -> Vec<SandboxError> {
    intents
        .iter()
        .map(|i| {
            let e = w
                .sandbox
                .resolve(&w.root, input, *i)
                .expect_err(&format!("{input:?} ({i:?}) must be refused"));
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("{input:?}")),
                "names the input: {msg}"
            );
            e
        })
        .collect()
}

const ALL: [Intent; 3] = [Intent::Read, Intent::Write, Intent::List];

fn says_allowed(e: &SandboxError, root: &Path) {
    let msg = e.to_string();
    assert!(
        msg.contains(&root.display().to_string()),
        "says which root is allowed: {msg}"
    );
}

#[test]
fn dotdot_traversal_is_refused() {
    let w = world();
    for input in [
        "../../etc/passwd",
        "src/../../outside/secret.txt",
        "src/pkg/../../../repo-evil/loot.txt",
    ] {
        for e in refused(&w, input, &ALL) {
            assert!(matches!(e, SandboxError::Escapes { .. }), "{input}: {e}");
            assert_eq!(e.code(), "path_not_allowed");
            says_allowed(&e, &w.root);
        }
    }
}

#[test]
fn percent_encoded_traversal_is_refused() {
    let w = world();
    for input in [
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%2E%2E/%2E%2E/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "src%2f..%2f..%2foutside",
        "..%5c..%5cetc",
        "%252e%252e%252f",
    ] {
        for e in refused(&w, input, &ALL) {
            assert!(matches!(e, SandboxError::Encoded { .. }), "{input}: {e}");
            assert!(e.to_string().contains("percent-encoded"), "{e}");
            says_allowed(&e, &w.root);
        }
    }
}

#[test]
fn absolute_paths_outside_the_roots_are_refused() {
    let w = world();
    let secret = w.outside.join("secret.txt").display().to_string();
    for input in ["/etc/passwd", "/", secret.as_str()] {
        for e in refused(&w, input, &ALL) {
            assert!(matches!(e, SandboxError::Outside { .. }), "{input}: {e}");
            says_allowed(&e, &w.root);
        }
    }
}

#[test]
fn home_paths_are_refused() {
    let w = world();
    for input in ["~/.ssh/id_rsa", "~", "~root/.bashrc"] {
        for e in refused(&w, input, &ALL) {
            assert!(matches!(e, SandboxError::Home { .. }), "{input}: {e}");
            says_allowed(&e, &w.root);
        }
    }
}

#[test]
fn a_sibling_with_the_roots_name_as_prefix_is_outside() {
    let w = world();
    let evil = format!("{}-evil/loot.txt", w.root.display());
    for e in refused(&w, &evil, &ALL) {
        assert!(matches!(e, SandboxError::Outside { .. }), "{e}");
    }
    for e in refused(&w, "../repo-evil/loot.txt", &ALL) {
        assert!(matches!(e, SandboxError::Escapes { .. }), "{e}");
    }
}

#[test]
fn a_symlink_to_outside_is_refused_for_read_and_write() {
    let w = world();
    for input in ["link_out", "dir_out/secret.txt", "./src/../link_out"] {
        for e in refused(&w, input, &[Intent::Read, Intent::Write]) {
            assert!(
                matches!(e, SandboxError::SymlinkEscape { .. }),
                "{input}: {e}"
            );
            // Where the link leads is information about files outside the roots: never said.
            assert!(
                !e.to_string().contains(&w.outside.display().to_string()),
                "{input}: {e}"
            );
            says_allowed(&e, &w.root);
        }
    }
    for e in refused(&w, "dir_out", &[Intent::List]) {
        assert!(matches!(e, SandboxError::SymlinkEscape { .. }), "{e}");
    }
    // A dangling link would create its target outside on write.
    for e in refused(&w, "dangling_out", &[Intent::Write, Intent::Read]) {
        assert!(matches!(e, SandboxError::BrokenSymlink { .. }), "{e}");
    }
    assert_eq!(
        std::fs::read_to_string(w.outside.join("secret.txt")).unwrap(),
        "top secret\n"
    );
    assert!(!w.outside.join("not_yet.txt").exists());
}

#[test]
fn a_new_file_under_a_symlinked_folder_is_refused() {
    let w = world();
    for input in ["dir_out/new.txt", "dir_out/deeper/still/new.txt"] {
        for e in refused(&w, input, &[Intent::Write]) {
            assert!(
                matches!(e, SandboxError::SymlinkEscape { .. }),
                "{input}: {e}"
            );
        }
        // A read of a missing file there says "outside", not "missing".
        for e in refused(&w, input, &[Intent::Read]) {
            assert!(
                matches!(e, SandboxError::SymlinkEscape { .. }),
                "{input}: {e}"
            );
        }
    }
    assert!(!w.outside.join("new.txt").exists());
}

#[test]
fn a_nul_byte_is_refused() {
    let w = world();
    for input in ["src/pkg/a.py\0.txt", "\0", "README.md\0"] {
        for e in refused(&w, input, &ALL) {
            assert!(matches!(e, SandboxError::Nul { .. }), "{e}");
        }
    }
}

#[test]
fn empty_and_backslash_paths_are_refused() {
    let w = world();
    for input in ["", "   "] {
        for i in ALL {
            let e = w.sandbox.resolve(&w.root, input, i).unwrap_err();
            assert!(matches!(e, SandboxError::Empty { .. }), "{e}");
        }
    }
    for e in refused(&w, "..\\..\\etc\\passwd", &ALL) {
        assert!(matches!(e, SandboxError::Backslash { .. }), "{e}");
    }
}

/// Runs `f` on another thread and fails (instead of hanging the suite) if it blocks.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the check blocked: it must never open the file")
}

#[test]
fn a_fifo_is_refused_without_opening_it() {
    let w = world();
    let fifo = w.root.join("src/pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let sandbox = w.sandbox.clone();
    let root = w.root.clone();
    let results = within_5s(move || {
        ALL.iter()
            .map(|i| sandbox.resolve(&root, "src/pipe", *i).map(|_| ()))
            .collect::<Vec<_>>()
    });
    for r in results {
        match r {
            Err(e @ SandboxError::NotRegular { .. }) => {
                assert!(e.to_string().contains("FIFO"), "{e}");
                assert_eq!(e.code(), "not_a_file");
            }
            other => panic!("FIFO must be refused: {other:?}"),
        }
    }
}

#[test]
fn a_socket_and_a_device_are_refused() {
    let w = world();
    let _listener = std::os::unix::net::UnixListener::bind(w.root.join("sock")).unwrap();
    for e in refused(&w, "sock", &ALL) {
        assert!(e.to_string().contains("socket"), "{e}");
    }
    std::os::unix::fs::symlink("/dev/null", w.root.join("null_link")).unwrap();
    // Outside first (the link leads out), whatever the file type.
    for e in refused(&w, "null_link", &[Intent::Read, Intent::Write]) {
        assert!(matches!(e, SandboxError::SymlinkEscape { .. }), "{e}");
    }
    let roots = Sandbox::new(vec![PathBuf::from("/dev")]).unwrap();
    let e = roots
        .resolve(Path::new("/dev"), "null", Intent::Read)
        .unwrap_err();
    assert!(e.to_string().contains("character device"), "{e}");
}

#[test]
fn folders_only_for_list() {
    let w = world();
    for e in refused(&w, "src", &[Intent::Read, Intent::Write]) {
        assert!(matches!(e, SandboxError::IsDirectory { .. }), "{e}");
    }
    let l = w.sandbox.resolve(&w.root, "src", Intent::List).unwrap();
    assert_eq!(l.rel(), "src");
}

#[test]
fn legitimate_paths_inside_are_accepted() {
    let w = world();
    let rel = w
        .sandbox
        .resolve(&w.root, "src/pkg/a.py", Intent::Read)
        .unwrap();
    assert_eq!(rel.abs(), w.root.join("src/pkg/a.py"));
    assert_eq!(rel.root(), w.root);
    assert_eq!(rel.rel(), "src/pkg/a.py");
    assert!(rel.exists());

    let dotted = w
        .sandbox
        .resolve(&w.root, "./src/../src/pkg/./a.py", Intent::Write)
        .unwrap();
    assert_eq!(dotted.rel(), "src/pkg/a.py");

    let abs_in = w.root.join("README.md").display().to_string();
    let abs = w.sandbox.resolve(&w.root, &abs_in, Intent::Read).unwrap();
    assert_eq!(abs.rel(), "README.md");

    // Relative to a base folder below the root.
    let sub = w
        .sandbox
        .resolve(&w.root.join("src"), "pkg/a.py", Intent::Read)
        .unwrap();
    assert_eq!(sub.rel(), "src/pkg/a.py");
    let up = w
        .sandbox
        .resolve(&w.root.join("src"), "../README.md", Intent::Read)
        .unwrap();
    assert_eq!(up.rel(), "README.md");

    let new = w
        .sandbox
        .resolve(&w.root, "brand/new/dir/file.py", Intent::Write)
        .unwrap();
    assert_eq!(new.abs(), w.root.join("brand/new/dir/file.py"));
    assert_eq!(new.rel(), "brand/new/dir/file.py");
    assert!(!new.exists());

    // A symlink that stays inside resolves to its real location (what the permission rules
    // must see).
    let link = w.sandbox.resolve(&w.root, "link_in", Intent::Read).unwrap();
    assert_eq!(link.rel(), "src/pkg/a.py");

    // A missing file is not an attack, but not readable either.
    let e = w
        .sandbox
        .resolve(&w.root, "src/missing.py", Intent::Read)
        .unwrap_err();
    assert!(matches!(e, SandboxError::NotFound { .. }), "{e}");
}

#[test]
fn several_roots_and_a_base_outside_them() {
    let w = world();
    let two = Sandbox::new(vec![w.root.clone(), w.outside.clone()]).unwrap();
    let secret = w.outside.join("secret.txt").display().to_string();
    let p = two.resolve(&w.root, &secret, Intent::Read).unwrap();
    assert_eq!(p.root(), w.outside);
    assert_eq!(p.rel(), "secret.txt");
    // The symlink into the second root is now inside a root.
    assert_eq!(
        two.resolve(&w.root, "link_out", Intent::Read)
            .unwrap()
            .root(),
        w.outside
    );

    let e = w
        .sandbox
        .resolve(Path::new("/etc"), "passwd", Intent::Read)
        .unwrap_err();
    assert!(matches!(e, SandboxError::BaseOutside { .. }), "{e}");
}
