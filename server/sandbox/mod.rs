//! Being written: the one path check (see chat/tool.rs).

use std::path::PathBuf;

pub struct Sandbox {
    pub roots: Vec<PathBuf>,
}
