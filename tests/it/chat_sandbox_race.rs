//! The check-then-use race of issue 10 (hole 1): while the model writes `d/x0..d/xN` through
//! the real `writeFile` tool, another thread keeps swapping `d` (a real folder) with a symlink
//! to a folder outside the root, atomically (`renameat2(RENAME_EXCHANGE)`). The sandbox's path
//! check can pass just before a swap; only the kernel-confined write (`openat2` with
//! `RESOLVE_BENEATH` under the root's descriptor) keeps the file inside. Afterwards nothing may
//! exist outside, and every write said either "ok" (and its file is inside) or a clear refusal.

use noctune_chat::tool::{Tool, ToolContext};
use noctune_chat::tools::files::file_tools;
use noctune_sandbox::Sandbox;
use serde_json::json;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WRITES: usize = 2_000;

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Everything below `dir`, relative, sorted (folders with a trailing '/').
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_folder_swapped_for_an_outside_symlink_never_lets_a_write_out() {
    // tmpfs when there is one: the race is the same, and 2,000 fsynced writes stay fast.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("repo");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();

    let ctx = ToolContext {
        repo_root: root.clone(),
        sandbox: Arc::new(Sandbox::new(vec![root.clone()]).unwrap()),
        session_id: "race".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    };
    let write_file: Arc<dyn Tool> = file_tools()
        .into_iter()
        .find(|t| t.name() == "writeFile")
        .unwrap();

    // The swapper runs for the whole test: `d` and `link` trade places as fast as it can.
    let (stop, swaps, swapper) = spawn_swapper(&root.join("d"), &root.join("link"));
    // Stops the swapper however this test ends (its folder goes away with `dir`).
    let _stop_on_exit = StopOnDrop(stop.clone());
    // Let the swapping start before the first write.
    support_wait_for_swaps(&swaps);

    let started = Instant::now();
    let outside_shown = outside.display().to_string();
    let mut written = Vec::new();
    let mut refused = 0usize;
    // Refusals at the time of use (the path check had passed): the kernel's.
    let mut by_kernel = 0usize;
    let mut other = Vec::new();
    // Refusals that say where the link points (information about files outside the roots).
    let mut leaks = Vec::new();
    for i in 0..WRITES {
        // Every tenth write also creates a folder under `d`, so the folder-creating path races too.
        let rel = if i % 10 == 9 {
            format!("d/n{i}/x{i}")
        } else {
            format!("d/x{i}")
        };
        let content = format!("write {i}\n");
        match write_file.call(&ctx, &json!({"path": rel, "content": content})) {
            Ok(out) => {
                assert_eq!(out["created"], true, "{rel}: {out}");
                written.push((rel, content));
            }
            Err(e)
                if e.code == "path_not_allowed"
                    && e.message.contains("outside the allowed roots") =>
            {
                if e.message.contains(&outside_shown) {
                    leaks.push(e.message);
                } else if e.message.contains("replaced by a link") {
                    by_kernel += 1;
                }
                refused += 1;
            }
            Err(e) => other.push(format!("{rel}: {}: {}", e.code, e.message)),
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    swapper
        .join()
        .unwrap()
        .expect("renameat2(RENAME_EXCHANGE) of d and link");
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!(
        "{WRITES} writes in {elapsed:.2?} ({} ok, {refused} refused, {by_kernel} of them after \
         the path check passed) during {swaps} swaps",
        written.len()
    );

    let escaped = tree(&outside);
    assert!(
        escaped.is_empty(),
        "nothing may be created outside the root, found {} entries there, e.g. {:?}",
        escaped.len(),
        &escaped[..escaped.len().min(5)]
    );
    assert!(
        leaks.is_empty(),
        "{} refusals say where the link points, e.g. {:?}",
        leaks.len(),
        leaks.first()
    );
    assert!(
        other.is_empty(),
        "every write is ok or a clear refusal; {} were neither, e.g. {:#?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    // The real folder is now called `d` or `link`, whichever the last swap left it as.
    let real: PathBuf = ["d", "link"]
        .iter()
        .map(|n| root.join(n))
        .find(|p| !p.is_symlink())
        .unwrap();
    for (rel, content) in &written {
        let inside = real.join(rel.strip_prefix("d/").unwrap());
        assert_eq!(
            std::fs::read_to_string(&inside).ok().as_deref(),
            Some(content.as_str()),
            "{rel} was reported written, so it must be inside: {}",
            inside.display()
        );
    }
    assert!(
        !written.is_empty(),
        "some writes must land while the swapper runs"
    );
    let leftovers: Vec<String> = tree(&real)
        .into_iter()
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

type Swapper = std::thread::JoinHandle<std::io::Result<()>>;

/// Swaps `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`) as fast as it can until `stop`
/// is set; `swaps` counts them.
fn spawn_swapper(a: &Path, b: &Path) -> (Arc<AtomicBool>, Arc<AtomicU64>, Swapper) {
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let (a, b) = (c_path(a), c_path(b));
    let thread = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 with two valid NUL-terminated paths.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                swaps.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    (stop, swaps, thread)
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until the swapper has swapped at least once (so the race is on from the first write).
fn support_wait_for_swaps(swaps: &AtomicU64) {
    crate::support::wait::wait_until(Duration::from_secs(5), "the swapper to start", || {
        swaps.load(Ordering::Relaxed) > 0
    });
}

/// The same swap against the read side: `listFiles` and `search` walk folders by path, so a
/// walk can step into the outside folder mid-swap. Nothing from outside may come back: no
/// content (files are opened beneath the root's descriptor) and no name that is not a file
/// inside (each listed name is checked beneath the root).
#[test]
fn a_folder_swapped_for_an_outside_symlink_never_lets_a_listing_or_search_out() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let root = base.join("repo");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("d/inside{i}.txt")), "harmless\n").unwrap();
        std::fs::write(outside.join(format!("secret{i}.txt")), "TOPSECRET\n").unwrap();
    }
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let ctx = ToolContext {
        repo_root: root.clone(),
        sandbox: Arc::new(Sandbox::new(vec![root.clone()]).unwrap()),
        session_id: "race-read".into(),
        edit_sink: None,
        overlay: None,
        read_stamps: Default::default(),
    };
    let tool = |name: &str| -> Arc<dyn Tool> {
        file_tools()
            .into_iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
    };
    let (list, search) = (tool("listFiles"), tool("search"));

    let (stop, swaps, swapper) = spawn_swapper(&root.join("d"), &root.join("link"));
    let _stop_on_exit = StopOnDrop(stop.clone());
    support_wait_for_swaps(&swaps);

    let mut leaked = Vec::new();
    let mut answered = 0;
    let mut found_inside = 0;
    for i in 0..400 {
        let out = if i % 2 == 0 {
            list.call(&ctx, &json!({"path": "."}))
        } else {
            search.call(&ctx, &json!({"pattern": "TOPSECRET|harmless"}))
        };
        let Ok(out) = out else { continue };
        answered += 1;
        // What came back from the tree: listed names and matching lines.
        let found = [&out["files"], &out["matches"]]
            .iter()
            .filter_map(|v| v.as_array())
            .flatten()
            .filter_map(|v| v.as_str())
            .map(str::to_string)
            .collect::<Vec<_>>();
        if found.iter().any(|f| f.contains("harmless")) {
            found_inside += 1;
        }
        if found
            .iter()
            .any(|f| f.contains("TOPSECRET") || f.contains("secret"))
        {
            leaked.push(out.to_string());
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper
        .join()
        .unwrap()
        .expect("renameat2(RENAME_EXCHANGE) of d and link");
    assert!(answered > 0, "some listings and searches must answer");
    assert!(
        found_inside > 0,
        "some searches must find the files inside while the swapper runs"
    );
    assert!(
        leaked.is_empty(),
        "{} of {answered} answers showed a name or content from outside the root, e.g. {}",
        leaked.len(),
        leaked
            .first()
            .map(|s| noctune_core::text::prefix_chars(s, 400))
            .unwrap_or_default()
    );
}
