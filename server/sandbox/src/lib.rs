//! The one function that turns a user-supplied path (from a model's tool call, a CLI flag, an
//! HTTP request) into a filesystem path: [`Sandbox::resolve`]. Every surface and every chat tool
//! goes through it, so a traversal fix lands everywhere at once. The file operations on a
//! resolved path ([`Sandbox::read`], [`Sandbox::write_atomic`], [`Sandbox::remove`], ...) are
//! the kernel-confined ones of [`RootDir`].
//!
//! How a path is checked, in order:
//! 1. Spelling, without touching the filesystem: empty, NUL, `~`, percent-encoded `.`/`/`/`\`/`%`,
//!    backslashes. (`%2e%2e%2f` is refused rather than decoded: some layer in front of us may
//!    decode it later, and a file name with such an escape is not worth that risk.)
//! 2. Lexical: `.` and `..` are folded against the base (or `/` for an absolute path), and the
//!    result must lie inside a root, compared component-wise (so `/repo-evil` is not inside
//!    `/repo`). Nothing outside the roots is ever looked up.
//! 3. Physical: the path, or for a new file its deepest existing ancestor, is canonicalized
//!    (every symlink followed) and must still lie inside a root. The file type is read with
//!    `stat`, never by opening it, so a FIFO cannot block us.
//!
//! These checks give good messages and refuse early; they are not the guarantee, since a folder
//! can be swapped for a symlink between `resolve` and the use. The guarantee is the kernel: each
//! root is held open from [`Sandbox::new`] on, a [`SafePath`] keeps its root's descriptor, and
//! every read, write, folder creation and removal through the sandbox is done relative to that
//! descriptor with `openat2(RESOLVE_BENEATH)` (or, on kernels without it, a walk that refuses
//! every symlink), never by walking the path string again (see `confined.rs`). So a file is only
//! ever read or written beneath a root, whatever happens to the folders meanwhile; a swap is
//! refused as [`SandboxError::Replaced`]. Messages never say where a link outside leads.

mod confined;
mod error;
mod lexical;

pub use confined::RootDir;
pub use error::SandboxError;

use error::show_roots;
use lexical::Refusal;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What the caller is about to do with the path; decides which file types are acceptable and
/// whether the path may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// An existing regular file.
    Read,
    /// A regular file that exists, or one that can be created (its missing folders included).
    Write,
    /// An existing folder (or a single regular file, listed or searched as itself).
    List,
}

/// A path that passed the sandbox: canonical, inside one of the roots, with that root held
/// open so that the file operations on it cannot be redirected outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    abs: PathBuf,
    root: PathBuf,
    rel: String,
    exists: bool,
    dir: Arc<RootDir>,
}

impl SafePath {
    /// The canonical absolute path (symlinks resolved; for a new file, its canonical folder
    /// joined with the missing names).
    pub fn abs(&self) -> &Path {
        &self.abs
    }
    /// The allowed root the path lies in (the innermost one, if roots nest).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Relative to [`SafePath::root`], '/'-separated; `.` for the root itself.
    pub fn rel(&self) -> &str {
        &self.rel
    }
    /// Whether the path existed when it was resolved (always true for Read and List).
    pub fn exists(&self) -> bool {
        self.exists
    }
    /// The open root the path lies in, for files kept beside it (backups).
    pub fn root_dir(&self) -> &Arc<RootDir> {
        &self.dir
    }
}

/// The allowed roots (canonical folders), each held open. Cheap to clone and to share behind an
/// `Arc`: one descriptor per root, shared by the clones and by the paths resolved.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Canonical, deduplicated, longest first so that the innermost root of nested ones wins.
    roots: Vec<PathBuf>,
    /// `roots[i]`, open.
    dirs: Vec<Arc<RootDir>>,
    /// The roots for messages, in the order given.
    shown: String,
}

impl Sandbox {
    /// Canonicalizes the roots; each must be an existing folder, and there must be at least one.
    pub fn new(roots: Vec<PathBuf>) -> Result<Sandbox, SandboxError> {
        if roots.is_empty() {
            return Err(SandboxError::NoRoots);
        }
        let mut canon = Vec::with_capacity(roots.len());
        for root in roots {
            let c = std::fs::canonicalize(&root).map_err(|source| SandboxError::RootUnusable {
                root: root.clone(),
                source,
            })?;
            if !c.is_dir() {
                return Err(SandboxError::RootNotADirectory { root });
            }
            if !canon.contains(&c) {
                canon.push(c);
            }
        }
        let shown = show_roots(&canon);
        canon.sort_by_key(|r| std::cmp::Reverse(r.as_os_str().len()));
        let dirs = canon
            .iter()
            .map(|r| RootDir::open(r).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sandbox {
            roots: canon,
            dirs,
            shown,
        })
    }

    /// The sandbox of a loaded configuration (`NOCTUNE_STUDIO_ALLOWED_ROOTS`, default: the
    /// repository).
    pub fn from_config(cfg: &noctune_config::Config) -> Result<Sandbox, SandboxError> {
        Sandbox::new(cfg.allowed_roots.clone())
    }

    /// The canonical roots (innermost first when they nest).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The roots held open, in the order of [`Sandbox::roots`].
    pub fn root_dirs(&self) -> &[Arc<RootDir>] {
        &self.dirs
    }

    /// Whether a canonical path lies inside (or is) one of the roots; component-wise.
    pub fn contains(&self, canonical: &Path) -> bool {
        self.root_of(canonical).is_some()
    }

    fn root_of(&self, p: &Path) -> Option<&PathBuf> {
        self.roots.iter().find(|r| p.starts_with(r))
    }

    /// The whole content of the regular file at `sp`, read beneath its root.
    pub fn read(&self, sp: &SafePath) -> Result<Vec<u8>, SandboxError> {
        sp.dir.read(&sp.rel)
    }

    /// The regular file at `sp`, opened for reading beneath its root (for a size check before
    /// reading).
    pub fn open_read(&self, sp: &SafePath) -> Result<std::fs::File, SandboxError> {
        sp.dir.open_read(&sp.rel)
    }

    /// What is at `sp` now (`None` if nothing), looked up beneath its root without opening it.
    pub fn metadata(&self, sp: &SafePath) -> Result<Option<std::fs::Metadata>, SandboxError> {
        sp.dir.metadata(&sp.rel)
    }

    /// Writes `bytes` to `sp` atomically beneath its root, creating missing folders and keeping
    /// an existing file's permission bits; see [`RootDir::write_atomic`].
    pub fn write_atomic(&self, sp: &SafePath, bytes: &[u8]) -> Result<(), SandboxError> {
        sp.dir.write_atomic(&sp.rel, bytes)
    }

    /// Removes the file at `sp` beneath its root.
    pub fn remove(&self, sp: &SafePath) -> Result<(), SandboxError> {
        sp.dir.remove_file(&sp.rel)
    }

    /// Resolves `user_path`, relative to `base` (a canonical folder inside a root, usually the
    /// repository root) or absolute inside a root, for `intent`. See the module doc for the
    /// checks and their order.
    pub fn resolve(
        &self,
        base: &Path,
        user_path: &str,
        intent: Intent,
    ) -> Result<SafePath, SandboxError> {
        let input = || user_path.to_string();
        let roots = || self.shown.clone();
        if let Some(r) = lexical::refuse_spelling(user_path) {
            return Err(match r {
                Refusal::Empty => SandboxError::Empty { roots: roots() },
                Refusal::Nul => SandboxError::Nul {
                    input: input(),
                    roots: roots(),
                },
                Refusal::Home => SandboxError::Home {
                    input: input(),
                    roots: roots(),
                },
                Refusal::Backslash => SandboxError::Backslash {
                    input: input(),
                    roots: roots(),
                },
                Refusal::Encoded(encoded, decoded) => SandboxError::Encoded {
                    input: input(),
                    encoded,
                    decoded,
                    roots: roots(),
                },
            });
        }
        let absolute = user_path.starts_with('/');
        let start = if absolute {
            PathBuf::from("/")
        } else {
            self.checked_base(base, user_path)?
        };
        let lexical = lexical::fold(start, user_path);
        if self.root_of(&lexical).is_none() {
            return Err(if lexical::has_dotdot(user_path) {
                SandboxError::Escapes {
                    input: input(),
                    resolved: lexical,
                    roots: roots(),
                }
            } else {
                SandboxError::Outside {
                    input: input(),
                    roots: roots(),
                }
            });
        }
        self.physical(user_path, &lexical, intent)
    }

    /// `base` as a folder inside a root; canonicalized only if it is not already inside one
    /// (callers normally pass the canonical repository root, so this costs nothing).
    fn checked_base(&self, base: &Path, input: &str) -> Result<PathBuf, SandboxError> {
        let plain = base.is_absolute()
            && !base
                .components()
                .any(|c| matches!(c, Component::ParentDir | Component::CurDir));
        if plain && self.contains(base) {
            return Ok(base.to_path_buf());
        }
        match std::fs::canonicalize(base) {
            Ok(c) if self.contains(&c) => Ok(c),
            _ => Err(SandboxError::BaseOutside {
                input: input.to_string(),
                base: base.to_path_buf(),
                roots: self.shown.clone(),
            }),
        }
    }

    /// Step 3 of the module doc: the real location must be inside a root too.
    fn physical(
        &self,
        input: &str,
        lexical: &Path,
        intent: Intent,
    ) -> Result<SafePath, SandboxError> {
        match std::fs::symlink_metadata(lexical) {
            Ok(_) => {
                let abs = self.canonical_inside(input, lexical)?;
                // `abs` has no symlinks left, so this `stat` describes the file itself.
                let md = std::fs::metadata(&abs).map_err(|e| self.io(input, &abs, e))?;
                check_type(input, &md, intent)?;
                self.safe(input, abs, true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound && intent == Intent::Write => {
                self.new_file(input, lexical)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Say "outside" rather than "missing" when a symlinked folder leads out, so the
                // answer tells nothing about files outside the roots.
                self.new_file(input, lexical)?;
                Err(SandboxError::NotFound {
                    input: input.to_string(),
                    roots: self.shown.clone(),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotADirectory => {
                Err(self.blocked_by_file(input, lexical))
            }
            Err(e) => Err(self.io(input, lexical, e)),
        }
    }

    /// A file to be created: its deepest existing ancestor must really be a folder inside a
    /// root (this is what catches a new file under a symlinked folder), and the names below it
    /// are plain names (no `..`, folded earlier), so they cannot leave it.
    fn new_file(&self, input: &str, lexical: &Path) -> Result<SafePath, SandboxError> {
        let mut missing: Vec<&std::ffi::OsStr> = Vec::new();
        let mut ancestor = lexical;
        loop {
            let Some(name) = ancestor.file_name() else {
                // Climbed to `/` without finding anything: the root itself is gone.
                return Err(SandboxError::NotFound {
                    input: input.to_string(),
                    roots: self.shown.clone(),
                });
            };
            missing.push(name);
            ancestor = ancestor.parent().unwrap_or(Path::new("/"));
            match std::fs::symlink_metadata(ancestor) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) if e.kind() == ErrorKind::NotADirectory => {
                    return Err(self.blocked_by_file(input, ancestor));
                }
                Err(e) => return Err(self.io(input, ancestor, e)),
            }
        }
        let mut abs = self.canonical_inside(input, ancestor)?;
        let md = std::fs::metadata(&abs).map_err(|e| self.io(input, &abs, e))?;
        if !md.is_dir() {
            return Err(SandboxError::ParentNotADirectory {
                input: input.to_string(),
                blocker: abs,
            });
        }
        for name in missing.iter().rev() {
            abs.push(name);
        }
        self.safe(input, abs, false)
    }

    /// Canonicalizes an existing path and requires the result inside a root.
    fn canonical_inside(&self, input: &str, p: &Path) -> Result<PathBuf, SandboxError> {
        let canon = std::fs::canonicalize(p).map_err(|e| match e.kind() {
            ErrorKind::NotFound => SandboxError::BrokenSymlink {
                input: input.to_string(),
                roots: self.shown.clone(),
            },
            _ => self.io(input, p, e),
        })?;
        if self.contains(&canon) {
            Ok(canon)
        } else {
            Err(self.symlink_escape(input))
        }
    }

    /// Where the link leads is not said: that would tell about files outside the roots.
    fn symlink_escape(&self, input: &str) -> SandboxError {
        SandboxError::SymlinkEscape {
            input: input.to_string(),
            roots: self.shown.clone(),
        }
    }

    fn safe(&self, input: &str, abs: PathBuf, exists: bool) -> Result<SafePath, SandboxError> {
        let Some(i) = self.roots.iter().position(|r| abs.starts_with(r)) else {
            // Unreachable by construction (every caller checked containment); refuse anyway.
            return Err(SandboxError::Outside {
                input: input.to_string(),
                roots: self.shown.clone(),
            });
        };
        let root = self.roots[i].clone();
        let rel = rel_of(&abs, &root).ok_or_else(|| SandboxError::NotUtf8 {
            input: input.to_string(),
            abs: abs.clone(),
        })?;
        Ok(SafePath {
            abs,
            root,
            rel,
            exists,
            dir: self.dirs[i].clone(),
        })
    }

    /// The first existing non-folder on the way down to `p`, for the error message; a
    /// "symlink out" refusal instead if that file is really outside (naming it would say that
    /// a file exists there).
    fn blocked_by_file(&self, input: &str, p: &Path) -> SandboxError {
        let blocker = p
            .ancestors()
            .find(|a| std::fs::symlink_metadata(a).is_ok_and(|m| !m.is_dir()))
            .unwrap_or(p);
        match std::fs::canonicalize(blocker) {
            Ok(real) if self.contains(&real) => SandboxError::ParentNotADirectory {
                input: input.to_string(),
                blocker: blocker.to_path_buf(),
            },
            Ok(_) => self.symlink_escape(input),
            Err(e) => self.io(input, blocker, e),
        }
    }

    fn io(&self, input: &str, path: &Path, source: std::io::Error) -> SandboxError {
        SandboxError::Io {
            input: input.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `abs` relative to `root`, '/'-separated, `.` for the root itself; `None` if not UTF-8.
fn rel_of(abs: &Path, root: &Path) -> Option<String> {
    let rest = abs.strip_prefix(root).ok()?;
    let mut out = String::new();
    for c in rest.components() {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(c.as_os_str().to_str()?);
    }
    if out.is_empty() {
        out.push('.');
    }
    Some(out)
}

pub(crate) fn check_type(
    input: &str,
    md: &std::fs::Metadata,
    intent: Intent,
) -> Result<(), SandboxError> {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_file() || (ft.is_dir() && intent == Intent::List) {
        return Ok(());
    }
    if ft.is_dir() {
        return Err(SandboxError::IsDirectory {
            input: input.to_string(),
        });
    }
    let kind = if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Err(SandboxError::NotRegular {
        input: input.to_string(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Sandbox, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.py"), "x = 1\n").unwrap();
        let sb = Sandbox::new(vec![root.clone()]).unwrap();
        let root = sb.roots()[0].clone();
        (dir, sb, root)
    }

    #[test]
    fn resolves_inside_and_reports_rel() {
        let (_d, sb, root) = setup();
        let p = sb
            .resolve(&root, "./src/../src/a.py", Intent::Read)
            .unwrap();
        assert_eq!(p.rel(), "src/a.py");
        assert_eq!(p.root(), root);
        assert!(p.exists());
        let l = sb.resolve(&root, ".", Intent::List).unwrap();
        assert_eq!(l.rel(), ".");
        let n = sb.resolve(&root, "new/deep/b.py", Intent::Write).unwrap();
        assert_eq!(n.rel(), "new/deep/b.py");
        assert!(!n.exists());
    }

    #[test]
    fn prefix_sibling_is_outside() {
        let (d, sb, root) = setup();
        let evil = d.path().join("repo-evil");
        std::fs::create_dir_all(&evil).unwrap();
        std::fs::write(evil.join("x"), "").unwrap();
        let evil = std::fs::canonicalize(evil).unwrap();
        let abs = format!("{}/x", evil.display());
        assert!(matches!(
            sb.resolve(&root, &abs, Intent::Read),
            Err(SandboxError::Outside { .. })
        ));
        assert!(matches!(
            sb.resolve(&root, "../repo-evil/x", Intent::Read),
            Err(SandboxError::Escapes { .. })
        ));
    }

    #[test]
    fn missing_file_for_read_and_file_as_folder() {
        let (_d, sb, root) = setup();
        let e = sb.resolve(&root, "nope.txt", Intent::Read).unwrap_err();
        assert_eq!(e.code(), "not_found");
        let e = sb
            .resolve(&root, "src/a.py/b.txt", Intent::Write)
            .unwrap_err();
        assert!(matches!(e, SandboxError::ParentNotADirectory { .. }), "{e}");
        let e = sb.resolve(&root, "src", Intent::Read).unwrap_err();
        assert!(matches!(e, SandboxError::IsDirectory { .. }), "{e}");
    }

    #[test]
    fn no_roots_refused() {
        assert!(matches!(Sandbox::new(vec![]), Err(SandboxError::NoRoots)));
        assert!(matches!(
            Sandbox::new(vec![PathBuf::from("/definitely/not/here")]),
            Err(SandboxError::RootUnusable { .. })
        ));
    }
}
