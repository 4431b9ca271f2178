//! Why a path was refused. Every message names the input as the model or user typed it and
//! says what is allowed instead, because it is read by a language model deciding its next call
//! and by a user at a terminal, not by our code.

use std::path::PathBuf;

/// The roots, for messages: `/a, /b`.
pub(crate) fn show_roots(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "no allowed roots: list at least one existing folder (NOCTUNE_STUDIO_ALLOWED_ROOTS, default: the repository)"
    )]
    NoRoots,

    #[error(
        "allowed root {root} cannot be used: {source}; list existing folders in NOCTUNE_STUDIO_ALLOWED_ROOTS (separated by ':')"
    )]
    RootUnusable {
        root: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "allowed root {root} is not a folder; list folders in NOCTUNE_STUDIO_ALLOWED_ROOTS (separated by ':')"
    )]
    RootNotADirectory { root: PathBuf },

    #[error(
        "the path is empty; give a file path relative to the repository root (e.g. src/main.py), inside {roots}"
    )]
    Empty { roots: String },

    #[error(
        "path {input:?} contains a NUL byte, which no file name may contain; give a plain path relative to the repository root, inside {roots}"
    )]
    Nul { input: String, roots: String },

    #[error(
        "path {input:?} starts with '~' (a home folder), which is not expanded; give a path relative to the repository root or an absolute path inside {roots}"
    )]
    Home { input: String, roots: String },

    #[error(
        "path {input:?} contains the percent-encoded character {encoded} ({decoded:?}); paths are taken literally and are not URL-decoded: write the plain path, inside {roots}"
    )]
    Encoded {
        input: String,
        encoded: String,
        decoded: char,
        roots: String,
    },

    #[error(
        "path {input:?} contains a backslash; separate folders with '/' (e.g. src/app/main.py), inside {roots}"
    )]
    Backslash { input: String, roots: String },

    #[error(
        "path {input:?} leaves the allowed roots through '..' (it resolves to {resolved}); only paths inside {roots} are allowed"
    )]
    Escapes {
        input: String,
        resolved: PathBuf,
        roots: String,
    },

    #[error(
        "path {input:?} is outside the allowed roots; only paths inside {roots} are allowed (relative to the repository root, or absolute inside a root)"
    )]
    Outside { input: String, roots: String },

    #[error(
        "the base folder {base} of path {input:?} is outside the allowed roots {roots}; resolve paths against the repository root"
    )]
    BaseOutside {
        input: String,
        base: PathBuf,
        roots: String,
    },

    /// Where the link points is deliberately not part of the message.
    #[error(
        "path {input:?} goes through a symbolic link that leads outside the allowed roots; only files whose real location is inside {roots} are allowed"
    )]
    SymlinkEscape { input: String, roots: String },

    /// The kernel refused the walk (`RESOLVE_BENEATH`): something on the way leads outside now,
    /// although the path was inside when it was checked.
    #[error(
        "path {input:?} leads outside the allowed roots (a folder on the way was replaced by a link); nothing was read or written. Use a path inside {roots} whose folders are real folders"
    )]
    Replaced { input: String, roots: String },

    #[error(
        "path {input:?} goes through a symbolic link whose target does not exist; use the real path of a file inside {roots}"
    )]
    BrokenSymlink { input: String, roots: String },

    #[error(
        "path {input:?} does not exist; list the folder with listFiles or search for the name, inside {roots}"
    )]
    NotFound { input: String, roots: String },

    #[error(
        "path {input:?} is a folder, not a file; list it with listFiles, or give the path of a file inside it"
    )]
    IsDirectory { input: String },

    #[error(
        "path {input:?} is {kind}, not a regular file; only regular files can be read or written (and folders listed)"
    )]
    NotRegular { input: String, kind: &'static str },

    #[error(
        "path {input:?}: {blocker} is a file, not a folder, so nothing can be created under it; choose a path whose folders are folders"
    )]
    ParentNotADirectory { input: String, blocker: PathBuf },

    #[error(
        "path {input:?} is not valid UTF-8 once resolved ({abs}); rename the file or use another one"
    )]
    NotUtf8 { input: String, abs: PathBuf },

    #[error("path {input:?}: cannot inspect {path}: {source}")]
    Io {
        input: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot {action} {input:?}: {source}")]
    Fs {
        input: String,
        action: &'static str,
        source: std::io::Error,
    },
}

impl SandboxError {
    /// A short machine-readable code for a tool result (`{"error": code, ...}`).
    pub fn code(&self) -> &'static str {
        match self {
            SandboxError::NotFound { .. } => "not_found",
            SandboxError::IsDirectory { .. } | SandboxError::NotRegular { .. } => "not_a_file",
            SandboxError::Io { .. } | SandboxError::Fs { .. } | SandboxError::NotUtf8 { .. } => {
                "io_error"
            }
            SandboxError::NoRoots
            | SandboxError::RootUnusable { .. }
            | SandboxError::RootNotADirectory { .. } => "sandbox_config",
            _ => "path_not_allowed",
        }
    }
}

/// For callers that speak `std::io` (backups): the IO error's own kind when there is one, so
/// `NotFound`/`AlreadyExists` still mean what they say; a refusal is `PermissionDenied`.
impl From<SandboxError> for std::io::Error {
    fn from(e: SandboxError) -> std::io::Error {
        let kind = match &e {
            SandboxError::Io { source, .. }
            | SandboxError::Fs { source, .. }
            | SandboxError::RootUnusable { source, .. } => source.kind(),
            SandboxError::NotFound { .. } => std::io::ErrorKind::NotFound,
            SandboxError::IsDirectory { .. } => std::io::ErrorKind::IsADirectory,
            SandboxError::NotRegular { .. } => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::PermissionDenied,
        };
        std::io::Error::new(kind, e)
    }
}
