//! Atomic writes: temp file in the same folder, fsync, rename, fsync the folder.

use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, true)
}

/// Atomic (readers see the old or the new content, never a mix) but not yet durable: for
/// batches, which call [`sync_filesystem`] once at the end instead of fsyncing every file.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, false)
}

/// Flushes the filesystem holding `path` (one `syncfs(2)` for a whole batch of writes).
pub fn sync_filesystem(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn write_atomic_with(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), unique()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Replaces the content of the regular file at `path` in place (same inode: no new file and
/// no rename, which on a large batch is most of the cost), never through a symlink: a path
/// that is a symlink, or no file yet, is written by [`write_atomic_unsynced`] instead, which
/// replaces the link itself. For files whose every reader can tell a half-written one (a run's
/// worktree, which is reset to its commit after a crash): not atomic, not durable.
pub fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::File::options()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match opened {
        Ok(mut f) if f.metadata()?.is_file() => f.write_all(bytes),
        _ => write_atomic_unsynced(path, bytes),
    }
}

pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomic(path, &json_bytes(value)?)
}

pub fn json_bytes<T: serde::Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; fall back to time+pid.
    if getrandom::fill(&mut b).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (std::process::id() as u128) << 64;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn overwrite_replaces_a_symlink_instead_of_writing_through_it() {
        let dir = std::env::temp_dir().join(format!(
            "noctune-fsx-test-{}-{}",
            std::process::id(),
            super::unique()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let outside = dir.join("outside.txt");
        std::fs::write(&outside, b"keep").unwrap();
        let link = dir.join("link.py");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        super::overwrite(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
        // A regular file keeps its inode; a missing one is created.
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&link).unwrap().ino();
        super::overwrite(&link, b"newer, and longer").unwrap();
        assert_eq!(std::fs::metadata(&link).unwrap().ino(), ino);
        assert_eq!(std::fs::read(&link).unwrap(), b"newer, and longer");
        super::overwrite(&dir.join("fresh.py"), b"x").unwrap();
        assert_eq!(std::fs::read(dir.join("fresh.py")).unwrap(), b"x");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
