//! File operations that the kernel confines to an allowed root.
//!
//! A [`RootDir`] holds a descriptor of its root folder, opened once when the sandbox is made.
//! Every operation starts from that descriptor, never from a path string: a file is opened
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the kernel refuses any walk that
//! would leave the root (an absolute or `..` symlink, a folder swapped for such a link after the
//! sandbox checked the path, `/proc/self/fd/...`) with `EXDEV`/`ELOOP`. Folders are created one
//! at a time (`mkdirat` in the parent's descriptor, then `openat2` of the new one), a write goes
//! to a temp file created with `O_EXCL` in the parent's descriptor and is `renameat`ed inside
//! that same descriptor, and a removal is an `unlinkat` there, so nothing is looked up by name
//! twice.
//!
//! On a kernel without `openat2` (before 5.6, `ENOSYS`) each component is opened with
//! `openat(O_NOFOLLOW)` instead, which refuses every symlink on the way, inside or not: also
//! race-free, only stricter.
//!
//! Files are opened with `O_NONBLOCK | O_NOCTTY` and their type read with `fstat` on the open
//! descriptor, so a FIFO or device swapped in after the check is refused without blocking.

use crate::error::SandboxError;
use crate::{Intent, check_type};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set once `openat2` answered `ENOSYS`; from then on every open walks component by component.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `openat2` answers `EAGAIN` when a rename raced with a `RESOLVE_BENEATH` walk through `..`;
/// it asks to be retried, a few times is plenty.
const EAGAIN_RETRIES: usize = 16;

const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY);
/// Files are opened without blocking on a FIFO and without becoming a controlling terminal.
const NO_SURPRISES: OFlags = OFlags::NONBLOCK.union(OFlags::NOCTTY);

/// One allowed root, held open. Cheap to share behind an `Arc`; the descriptor is close-on-exec.
#[derive(Debug)]
pub struct RootDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl PartialEq for RootDir {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}
impl Eq for RootDir {}

impl RootDir {
    /// Opens the folder `path` (`O_PATH | O_DIRECTORY`). Operations stay beneath the folder it
    /// named at this moment, even if that path is later renamed or replaced.
    pub fn open(path: &Path) -> Result<RootDir, SandboxError> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SandboxError::RootUnusable {
            root: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(RootDir {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// The root as it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The regular file `rel`, opened for reading.
    pub fn open_read(&self, rel: &str) -> Result<File, SandboxError> {
        let parts = self.parts(rel)?;
        let fd = open_beneath(self.fd.as_fd(), &parts, OFlags::RDONLY | NO_SURPRISES)
            .map_err(|e| self.fail(rel, "read", e))?;
        let f = File::from(fd);
        let md = f.metadata().map_err(|e| self.fail_io(rel, "read", e))?;
        check_type(rel, &md, Intent::Read)?;
        Ok(f)
    }

    /// The whole content of the regular file `rel`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, SandboxError> {
        let mut f = self.open_read(rel)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)
            .map_err(|e| self.fail_io(rel, "read", e))?;
        Ok(out)
    }

    /// What `rel` is (a final symlink inside the root is followed); `None` if it does not
    /// exist. Never opens the file itself (`O_PATH`), so a FIFO cannot block.
    pub fn metadata(&self, rel: &str) -> Result<Option<Metadata>, SandboxError> {
        let parts = self.parts(rel)?;
        match open_beneath(self.fd.as_fd(), &parts, OFlags::PATH) {
            Ok(fd) => File::from(fd)
                .metadata()
                .map(Some)
                .map_err(|e| self.fail_io(rel, "inspect", e)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.fail(rel, "inspect", e)),
        }
    }

    /// Replaces (or creates) the file `rel` atomically and durably: its missing folders are
    /// created, the bytes go to a temp file beside it (fsynced), which is renamed over it, and
    /// the folder is fsynced. An existing file's permission bits are kept (an edited script
    /// stays executable); a final symlink is replaced, never followed.
    pub fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), SandboxError> {
        let parts = self.parts(rel)?;
        let Some((name, folders)) = parts.split_last() else {
            return Err(SandboxError::IsDirectory {
                input: rel.to_string(),
            });
        };
        let dir = self
            .dir_fd(folders, true)
            .map_err(|e| self.fail(rel, "write", e))?;
        let mode = match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Some(Mode::from_raw_mode(st.st_mode))
            }
            _ => None,
        };
        let (tmp, fd) = create_temp(&dir, name).map_err(|e| self.fail(rel, "write", e))?;
        let result = (|| -> std::io::Result<()> {
            let mut f = File::from(fd);
            f.write_all(bytes)?;
            if let Some(mode) = mode {
                rustix::fs::fchmod(&f, mode)?;
            }
            f.sync_all()?;
            rustix::fs::renameat(&dir, &tmp, &dir, *name)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            return Err(self.fail_io(rel, "write", e));
        }
        // The rename is done; a folder that cannot be fsynced (some filesystems refuse) does
        // not undo it.
        let _ = rustix::fs::fsync(&dir);
        Ok(())
    }

    /// Creates the folder `rel` and its missing parents.
    pub fn create_dir_all(&self, rel: &str) -> Result<(), SandboxError> {
        let parts = self.parts(rel)?;
        self.dir_fd(&parts, true)
            .map(drop)
            .map_err(|e| self.fail(rel, "create the folder", e))
    }

    /// Creates the folder `rel` (its parents too); `false` if it already existed, which makes
    /// it a lock that one caller wins.
    pub fn create_dir(&self, rel: &str) -> Result<bool, SandboxError> {
        let parts = self.parts(rel)?;
        let Some((name, folders)) = parts.split_last() else {
            return Ok(false);
        };
        let fail = |e| self.fail(rel, "create the folder", e);
        let dir = self.dir_fd(folders, true).map_err(fail)?;
        match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o777)) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(fail(e)),
        }
    }

    /// Removes the file `rel` (a symlink is removed itself, its target is left alone).
    pub fn remove_file(&self, rel: &str) -> Result<(), SandboxError> {
        let parts = self.parts(rel)?;
        let Some((name, folders)) = parts.split_last() else {
            return Err(SandboxError::IsDirectory {
                input: rel.to_string(),
            });
        };
        let fail = |e| self.fail(rel, "remove", e);
        let dir = self.dir_fd(folders, false).map_err(fail)?;
        rustix::fs::unlinkat(&dir, *name, AtFlags::empty()).map_err(fail)
    }

    /// The regular file `rel`, opened to read and to append (created with its folders if
    /// missing). A final symlink is refused.
    pub fn open_append(&self, rel: &str) -> Result<File, SandboxError> {
        let parts = self.parts(rel)?;
        let Some((name, folders)) = parts.split_last() else {
            return Err(SandboxError::IsDirectory {
                input: rel.to_string(),
            });
        };
        let fail = |e| self.fail(rel, "append to", e);
        let dir = self.dir_fd(folders, true).map_err(fail)?;
        let flags = OFlags::RDWR
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | NO_SURPRISES;
        let fd =
            rustix::fs::openat(&dir, *name, flags, Mode::from_raw_mode(0o666)).map_err(fail)?;
        let f = File::from(fd);
        let md = f
            .metadata()
            .map_err(|e| self.fail_io(rel, "append to", e))?;
        check_type(rel, &md, Intent::Write)?;
        Ok(f)
    }

    /// The folder `parts` (the root itself when empty), opened so that it can be fsynced;
    /// with `create`, missing folders are made one at a time, each opened beneath its parent.
    fn dir_fd(&self, parts: &[&str], create: bool) -> rustix::io::Result<OwnedFd> {
        match open_beneath(self.fd.as_fd(), parts, DIR) {
            Err(Errno::NOENT) if create && !parts.is_empty() => {}
            r => return r,
        }
        // The deepest folder that exists, looked for from the end: new files mostly go one or
        // two folders below existing ones. `parts[..0]` is the root, which exists.
        let mut have = parts.len() - 1;
        let mut cur = loop {
            match open_beneath(self.fd.as_fd(), &parts[..have], DIR) {
                Err(Errno::NOENT) if have > 0 => have -= 1,
                r => break r?,
            }
        };
        for name in &parts[have..] {
            let next = match open_beneath(cur.as_fd(), &[name], DIR) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, *name, Mode::from_raw_mode(0o777)) {
                        // EEXIST: made by someone else meanwhile (or swapped for a link, which
                        // the open below refuses).
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e),
                    }
                    open_beneath(cur.as_fd(), &[name], DIR)?
                }
                r => r?,
            };
            cur = next;
        }
        Ok(cur)
    }

    /// `rel`'s names: `.` and empty ones dropped; `..`, NUL and absolute paths refused (the
    /// kernel would refuse `..` out of the root too, this says it better).
    fn parts<'a>(&self, rel: &'a str) -> Result<Vec<&'a str>, SandboxError> {
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if rel.starts_with('/') || rel.contains('\0') || parts.contains(&"..") {
            return Err(SandboxError::Outside {
                input: rel.to_string(),
                roots: self.path.display().to_string(),
            });
        }
        Ok(parts)
    }

    fn fail(&self, rel: &str, action: &'static str, e: Errno) -> SandboxError {
        match e {
            // RESOLVE_BENEATH's "that walk leaves the root", and the fallback's "a symlink".
            Errno::XDEV | Errno::LOOP => SandboxError::Replaced {
                input: rel.to_string(),
                roots: self.path.display().to_string(),
            },
            Errno::NOENT => SandboxError::NotFound {
                input: rel.to_string(),
                roots: self.path.display().to_string(),
            },
            e => self.fail_io(rel, action, e.into()),
        }
    }

    fn fail_io(&self, rel: &str, action: &'static str, source: std::io::Error) -> SandboxError {
        SandboxError::Fs {
            input: rel.to_string(),
            action,
            source,
        }
    }
}

/// Opens `parts` beneath `dir`: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, or the
/// component walk of [`open_walking`] when the kernel has no `openat2`.
fn open_beneath(dir: BorrowedFd<'_>, parts: &[&str], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) && !walking_forced() {
        let path = if parts.is_empty() {
            ".".to_string()
        } else {
            parts.join("/")
        };
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(dir, &path, flags, Mode::empty(), how) {
                Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
                Err(Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                r => return r,
            }
        }
    }
    open_walking(dir, parts, flags)
}

/// Opens `parts` beneath `dir` one name at a time with `O_NOFOLLOW`, refusing (`ELOOP`) any
/// symlink on the way, the last name included.
fn open_walking(dir: BorrowedFd<'_>, parts: &[&str], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let Some((last, folders)) = parts.split_last() else {
        return rustix::fs::openat(dir, ".", flags, Mode::empty());
    };
    let mut cur: Option<OwnedFd> = None;
    for name in folders {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let next = rustix::fs::openat(
            at,
            *name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| link_as_loop(at, name, e))?;
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(dir, |f| f.as_fd());
    let fd = rustix::fs::openat(at, *last, flags | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| link_as_loop(at, last, e))?;
    // `O_PATH | O_NOFOLLOW` opens a symlink itself rather than failing.
    if flags.contains(OFlags::PATH)
        && FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == FileType::Symlink
    {
        return Err(Errno::LOOP);
    }
    Ok(fd)
}

/// `O_DIRECTORY | O_NOFOLLOW` on a symlink answers `ENOTDIR`; say `ELOOP` (a link) instead.
fn link_as_loop(at: BorrowedFd<'_>, name: &str, e: Errno) -> Errno {
    let is_link = || {
        rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    if e == Errno::NOTDIR && is_link() {
        Errno::LOOP
    } else {
        e
    }
}

/// A new temp file beside `name` in `dir`, created with `O_EXCL` (never an existing file or a
/// symlink planted under the same name).
fn create_temp(dir: &OwnedFd, name: &str) -> rustix::io::Result<(String, OwnedFd)> {
    static N: AtomicU64 = AtomicU64::new(0);
    // Short enough that the temp name stays under NAME_MAX whatever the file's name.
    let mut cut = name.len().min(64);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut last = Errno::EXIST;
    for _ in 0..100 {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tmp = format!(".{}.noctune-{}-{n}.tmp", &name[..cut], std::process::id());
        match rustix::fs::openat(dir, &tmp, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => return Ok((tmp, fd)),
            Err(e @ Errno::EXIST) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
thread_local! {
    /// Tests of the fallback force it on their own thread only (tests run in parallel).
    pub(crate) static FORCE_WALKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn walking_forced() -> bool {
    FORCE_WALKING.with(|f| f.get())
}

#[cfg(not(test))]
fn walking_forced() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sandbox;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::sync::mpsc;
    use std::time::Duration;

    struct World {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        sandbox: Sandbox,
    }

    /// `<tmp>/repo` with `src/a.py`, `<tmp>/outside` with a secret, and links from the root:
    /// `in_abs`/`in_rel` to `src` (absolute and relative), `out_abs`/`out_rel` to the outside.
    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (root, outside) = (base.join("repo"), base.join("outside"));
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("src/a.py"), "x = 1\n").unwrap();
        std::fs::write(outside.join("secret.txt"), "top secret\n").unwrap();
        symlink("src", root.join("in_rel")).unwrap();
        symlink(root.join("src"), root.join("in_abs")).unwrap();
        symlink(&outside, root.join("out_abs")).unwrap();
        symlink("../outside", root.join("out_rel")).unwrap();
        let sandbox = Sandbox::new(vec![root.clone()]).unwrap();
        World {
            _dir: dir,
            root,
            outside,
            sandbox,
        }
    }

    impl World {
        fn dir(&self) -> &RootDir {
            &self.sandbox.dirs[0]
        }
        fn outside_untouched(&self) {
            let names: Vec<_> = std::fs::read_dir(&self.outside)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["secret.txt"], "nothing new outside");
            assert_eq!(
                std::fs::read_to_string(self.outside.join("secret.txt")).unwrap(),
                "top secret\n"
            );
        }
    }

    fn walking<T>(f: impl FnOnce() -> T) -> T {
        FORCE_WALKING.with(|w| w.set(true));
        let out = f();
        FORCE_WALKING.with(|w| w.set(false));
        out
    }

    fn replaced(r: Result<impl std::fmt::Debug, SandboxError>, w: &World) {
        match r {
            Err(e @ SandboxError::Replaced { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("leads outside the allowed roots"), "{msg}");
                assert!(
                    !msg.contains(&w.outside.display().to_string()),
                    "never says where: {msg}"
                );
                assert_eq!(e.code(), "path_not_allowed");
            }
            other => panic!("must be refused as leading outside: {other:?}"),
        }
    }

    #[test]
    fn reads_writes_and_folders_inside() {
        let w = world();
        let d = w.dir();
        assert_eq!(d.read("src/a.py").unwrap(), b"x = 1\n");
        d.write_atomic("new/deep/b.py", b"print(1)\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(w.root.join("new/deep/b.py")).unwrap(),
            "print(1)\n"
        );
        assert!(d.metadata("new/deep/b.py").unwrap().unwrap().is_file());
        assert!(d.metadata("new/deep").unwrap().unwrap().is_dir());
        assert!(d.metadata("nope").unwrap().is_none());
        assert!(d.create_dir("ids/0001").unwrap());
        assert!(!d.create_dir("ids/0001").unwrap(), "a second claim loses");
        d.create_dir_all("x/y/z").unwrap();
        assert!(w.root.join("x/y/z").is_dir());
        let mut f = d.open_append("log/j.jsonl").unwrap();
        f.write_all(b"one\n").unwrap();
        let mut f = d.open_append("log/j.jsonl").unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(d.read("log/j.jsonl").unwrap(), b"one\ntwo\n");
        d.remove_file("new/deep/b.py").unwrap();
        assert!(!w.root.join("new/deep/b.py").exists());
        assert!(matches!(
            d.read("new/deep/b.py"),
            Err(SandboxError::NotFound { .. })
        ));
        assert!(matches!(
            d.read("src"),
            Err(SandboxError::IsDirectory { .. })
        ));
        assert!(matches!(
            d.read("../outside/secret.txt"),
            Err(SandboxError::Outside { .. })
        ));
    }

    #[test]
    fn a_write_keeps_the_mode_and_leaves_no_temp_file() {
        let w = world();
        let p = w.root.join("src/run.sh");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sp = w
            .sandbox
            .resolve(&w.root, "src/run.sh", Intent::Write)
            .unwrap();
        w.sandbox
            .write_atomic(&sp, b"#!/bin/sh\necho hi\n")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#!/bin/sh\necho hi\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let mut names: Vec<_> = std::fs::read_dir(w.root.join("src"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.py", "run.sh"]);
    }

    #[test]
    fn a_symlink_inside_is_followed() {
        let w = world();
        assert_eq!(w.dir().read("in_rel/a.py").unwrap(), b"x = 1\n");
        w.dir().write_atomic("in_rel/c.py", b"c\n").unwrap();
        assert_eq!(std::fs::read(w.root.join("src/c.py")).unwrap(), b"c\n");
        // An absolute link is refused by RESOLVE_BENEATH even when it points inside: the
        // sandbox never hands one out (resolve canonicalizes), so only a swap makes one.
        replaced(w.dir().read("in_abs/a.py"), &w);
    }

    #[test]
    fn a_symlink_outside_is_refused_for_every_operation() {
        let w = world();
        for link in ["out_abs", "out_rel"] {
            let d = w.dir();
            replaced(d.read(&format!("{link}/secret.txt")), &w);
            replaced(d.metadata(&format!("{link}/secret.txt")), &w);
            replaced(d.write_atomic(&format!("{link}/secret.txt"), b"pwned"), &w);
            replaced(d.write_atomic(&format!("{link}/new/x.txt"), b"pwned"), &w);
            replaced(d.create_dir(&format!("{link}/made")), &w);
            replaced(d.open_append(&format!("{link}/log")), &w);
            replaced(d.remove_file(&format!("{link}/secret.txt")), &w);
        }
        w.outside_untouched();
    }

    #[test]
    fn a_folder_replaced_by_an_outside_symlink_after_resolve_is_refused() {
        let w = world();
        std::fs::create_dir_all(w.root.join("d")).unwrap();
        std::fs::write(w.root.join("d/f.txt"), "inside\n").unwrap();
        let new = w
            .sandbox
            .resolve(&w.root, "d/new.txt", Intent::Write)
            .unwrap();
        let deep = w
            .sandbox
            .resolve(&w.root, "d/n/new.txt", Intent::Write)
            .unwrap();
        let old = w.sandbox.resolve(&w.root, "d/f.txt", Intent::Read).unwrap();
        // The swap: `d` becomes a link to the outside folder, which has a `f.txt` too.
        std::fs::rename(w.root.join("d"), w.root.join("d_moved")).unwrap();
        symlink(&w.outside, w.root.join("d")).unwrap();
        std::fs::write(w.outside.join("f.txt"), "outside\n").unwrap();
        replaced(w.sandbox.write_atomic(&new, b"pwned"), &w);
        replaced(w.sandbox.write_atomic(&deep, b"pwned"), &w);
        replaced(w.sandbox.read(&old), &w);
        replaced(w.sandbox.metadata(&old), &w);
        replaced(w.sandbox.remove(&old), &w);
        assert_eq!(
            std::fs::read_to_string(w.outside.join("f.txt")).unwrap(),
            "outside\n"
        );
        assert!(!w.outside.join("new.txt").exists() && !w.outside.join("n").exists());
    }

    /// Runs `f` on another thread and fails (instead of hanging) if it blocks.
    fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("blocked on the FIFO: it must be refused without waiting for a writer")
    }

    fn mkfifo(p: &Path) {
        rustix::fs::mkfifoat(rustix::fs::CWD, p, Mode::from_raw_mode(0o644)).unwrap();
    }

    #[test]
    fn a_fifo_swapped_in_after_resolve_is_refused_without_blocking() {
        let w = world();
        let sp = w
            .sandbox
            .resolve(&w.root, "src/a.py", Intent::Read)
            .unwrap();
        std::fs::remove_file(w.root.join("src/a.py")).unwrap();
        mkfifo(&w.root.join("src/a.py"));
        let sandbox = w.sandbox.clone();
        let (read, append, md, walked) = within_5s(move || {
            let read = sandbox.read(&sp).map(drop);
            let append = sandbox.dirs[0].open_append("src/a.py").map(drop);
            let md = sandbox.metadata(&sp).map(|m| m.map(|m| m.file_type()));
            let walked = walking(|| sandbox.read(&sp).map(drop));
            (read, append, md, walked)
        });
        for r in [read, append, walked] {
            match r {
                Err(e @ SandboxError::NotRegular { .. }) => {
                    assert!(e.to_string().contains("FIFO"), "{e}")
                }
                other => panic!("a FIFO must be refused: {other:?}"),
            }
        }
        use std::os::unix::fs::FileTypeExt;
        assert!(
            md.unwrap().unwrap().is_fifo(),
            "metadata sees it without opening it"
        );
    }

    #[test]
    fn without_openat2_every_symlink_on_the_way_is_refused() {
        let w = world();
        walking(|| {
            let d = w.dir();
            assert_eq!(d.read("src/a.py").unwrap(), b"x = 1\n");
            d.write_atomic("w/x/y.txt", b"y\n").unwrap();
            assert_eq!(d.read("w/x/y.txt").unwrap(), b"y\n");
            assert!(d.metadata("w/x").unwrap().unwrap().is_dir());
            d.remove_file("w/x/y.txt").unwrap();
            for link in ["out_abs", "out_rel", "in_rel"] {
                replaced(d.read(&format!("{link}/a.py")), &w);
                replaced(d.write_atomic(&format!("{link}/n/x.txt"), b"pwned"), &w);
                replaced(d.metadata(&format!("{link}/secret.txt")), &w);
                replaced(d.remove_file(&format!("{link}/secret.txt")), &w);
            }
            // A final symlink: read and inspect refuse it, a write replaces it (rename).
            replaced(d.read("out_abs"), &w);
            replaced(d.metadata("out_abs"), &w);
        });
        w.outside_untouched();
    }

    #[test]
    fn a_file_outside_is_not_named_when_it_blocks_a_new_path() {
        let w = world();
        for intent in [Intent::Write, Intent::Read] {
            let e = w
                .sandbox
                .resolve(&w.root, "out_abs/secret.txt/new.txt", intent)
                .unwrap_err();
            assert!(matches!(e, SandboxError::SymlinkEscape { .. }), "{e}");
            assert!(!e.to_string().contains("secret.txt is a file"), "{e}");
        }
        let e = w
            .sandbox
            .resolve(&w.root, "src/a.py/new.txt", Intent::Write)
            .unwrap_err();
        assert!(matches!(e, SandboxError::ParentNotADirectory { .. }), "{e}");
    }
}
