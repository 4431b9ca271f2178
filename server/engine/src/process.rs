//! Worker processes: spawn, liveness (pid + start time, so a reused pid is not mistaken for
//! our worker) and kill.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), or `None` when
/// the process does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process `pid` that started at `started` still runs.
pub fn is_alive(pid: u32, started: Option<u64>) -> bool {
    match (start_time(pid), started) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// SIGKILL to `pid` if it is still the process that started at `started`.
pub fn kill(pid: u32, started: Option<u64>) {
    if is_alive(pid, started) {
        // SAFETY: kill(2) with a pid we verified just now; no memory is shared.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

static WORKER_EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Which program runs `worker` for runs started by this process: the `noctune` binary itself
/// unless a host that is not `noctune` (a test harness, a benchmark) names it once, first.
/// Returns false if it was already set to something else.
pub fn set_worker_exe(exe: std::path::PathBuf) -> bool {
    WORKER_EXE.get_or_init(|| exe.clone()) == &exe
}

/// Spawns `noctune worker --run-dir DIR` in its own process group, with stdout and stderr
/// going to the run's `worker.log`. The worker records into the host's audit DB `db`, whatever
/// the environment says.
pub fn spawn_worker(run_dir: &Path, log: &Path, db: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let exe = match WORKER_EXE.get() {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?,
    };
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(exe)
        .arg("worker")
        .arg("--run-dir")
        .arg(run_dir)
        .env(noctune_config::ENV_DB, db)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
}

/// Describes how a child ended, for a run's `error`.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => "SIGKILL",
            libc::SIGTERM => "SIGTERM",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGINT => "SIGINT",
            _ => "signal",
        };
        format!("worker was killed by signal {sig} ({name})")
    } else {
        format!(
            "worker exited with code {} before the run finished",
            status.code().unwrap_or(-1)
        )
    }
}
