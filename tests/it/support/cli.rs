//! Running the real `noctune` binary, as a user would, with a private audit DB.

use crate::support::wait::poll_for;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub struct Noctune {
    pub db_dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    #[track_caller]
    pub fn ok(self) -> Ran {
        assert_eq!(
            self.code, 0,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_noctune"))
}

impl Noctune {
    pub fn new() -> Noctune {
        Noctune {
            db_dir: tempfile::Builder::new()
                .prefix("noctune-db-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.db_dir.path().join("audit.sqlite")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("NOCTUNE_STUDIO_DB", self.db())
            .env_remove("NOCTUNE_STUDIO_ALLOWED_ROOTS")
            .env_remove("NOCTUNE_STUDIO_LLM_BASE_URL")
            .env_remove("NOCTUNE_STUDIO_LLM_MODEL");
        c
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        self.cmd().args(args).output().unwrap().into()
    }

    /// `noctune run --detach --json` and the run id.
    pub fn start(&self, repo: &Path, pack: &str) -> String {
        let r = self
            .run(&[
                "run",
                "--repo",
                repo.to_str().unwrap(),
                "--pack",
                pack,
                "--detach",
                "--json",
            ])
            .ok();
        r.json()["run_id"].as_str().unwrap().to_string()
    }

    pub fn status(&self, run_id: &str) -> Value {
        self.run(&["status", run_id, "--json"]).ok().json()
    }

    /// Polls `status` until `pred` holds (or panics after `secs`).
    #[track_caller]
    pub fn wait_for(&self, run_id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        poll_for(Duration::from_secs(secs), || {
            last = self.status(run_id);
            pred(&last).then(|| last.clone())
        })
        .unwrap_or_else(|elapsed| {
            let ev = self.run(&["events", run_id]).stdout;
            panic!(
                "timed out after {elapsed:.1?} waiting for the status of run {run_id}; \
                 last status {last:#}\nevents:\n{ev}"
            )
        })
    }

    #[track_caller]
    pub fn wait_status(&self, run_id: &str, status: &str, secs: u64) -> Value {
        self.wait_for(run_id, secs, |s| s["status"] == status)
    }

    /// Polls the events until one of type `kind` matches `pred`.
    #[track_caller]
    pub fn wait_event(&self, run_id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        poll_for(Duration::from_secs(secs), || {
            self.events(run_id).into_iter().find(|e| pred(e))
        })
        .unwrap_or_else(|elapsed| {
            panic!(
                "timed out after {elapsed:.1?} waiting for an event of run {run_id}; events: {:#?}",
                self.events(run_id)
            )
        })
    }

    pub fn events(&self, run_id: &str) -> Vec<Value> {
        let r = self.run(&["events", run_id, "--json"]).ok();
        r.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn approvals(&self, run_id: &str) -> Vec<Value> {
        self.run(&["approvals", run_id, "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn decide(&self, run_id: &str, approval_id: &str, decision: &str, reason: &str) -> Ran {
        self.run(&[
            "decide",
            run_id,
            approval_id,
            decision,
            "--reason",
            reason,
            "--by",
            "tester",
        ])
    }
}

pub fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// How `cmd` ends when whoever reads its stdout goes away, as `noctune ... | head -N` does:
/// `lines` lines are read, then the reading end of the pipe is closed (`0`: closed before the
/// command starts, so its first write fails). `stdout` holds the lines read, `stderr` all of
/// stderr. Panics if the command has not ended `secs` seconds after the reader went.
#[track_caller]
pub fn run_reader_gone(mut cmd: Command, lines: usize, secs: u64) -> Ran {
    use std::io::{BufRead, Read};
    use std::process::Stdio;
    // A panic's backtrace is what a person would see: make it show if there is one.
    cmd.env("RUST_BACKTRACE", "1").stderr(Stdio::piped());
    let mut read = Vec::new();
    let mut child = if lines == 0 {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = cmd.stdout(writer).spawn().unwrap();
        // The command keeps its copy of the writing end; the child has its own.
        drop(cmd);
        child
    } else {
        let (reader, writer) = std::io::pipe().unwrap();
        // The smallest pipe Linux makes (one page, from 64 KiB): a listing of a few pages then
        // cannot fit in it before the reader goes, so its later lines meet the closed end.
        // SAFETY: fcntl on a descriptor this function owns; no memory is passed.
        let rc = unsafe {
            use std::os::fd::AsRawFd;
            libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096)
        };
        assert!(
            rc >= 4096,
            "F_SETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
        let child = cmd.stdout(writer).spawn().unwrap();
        drop(cmd);
        let mut out = std::io::BufReader::new(reader);
        for _ in 0..lines {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            read.push(line);
        }
        child
    };
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = poll_for(Duration::from_secs(secs), || child.try_wait().unwrap());
    let status = match status {
        Ok(s) => s,
        Err(elapsed) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {elapsed:.1?} after its stdout was closed; stderr:\n{}",
                stderr.join().unwrap()
            );
        }
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: read.concat(),
        stderr: stderr.join().unwrap(),
    }
}
