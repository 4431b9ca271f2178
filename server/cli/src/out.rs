//! Where the terminal commands print, and how the process ends.
//!
//! Rust ignores SIGPIPE, so writing to a pipe whose reader has gone (`noctune runs | head -1`)
//! fails with EPIPE, and `println!` turns that into a panic with a backtrace. Every command
//! prints through [`Out`] instead: its write errors return to the caller like any other error,
//! and a closed stdout is marked so that [`exit_code`] can tell it from a broken pipe to some
//! other process (an MCP server, a tool) and end quietly with status 0, as ripgrep does.
//! Resetting SIGPIPE to its default would end the process too, but with status 141.

use std::fmt;
use std::io::{self, Write};

/// Stdout (or, in tests, any writer) whose `BrokenPipe` errors are marked as "stdout closed".
pub struct Out<W: Write = io::Stdout>(W);

impl Out {
    pub fn stdout() -> Out {
        Out(io::stdout())
    }
}

impl<W: Write> Out<W> {
    #[cfg(test)]
    pub fn new(w: W) -> Out<W> {
        Out(w)
    }
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

fn mark(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

/// The marker inside the `io::Error` of a write to a stdout nobody reads any more.
#[derive(Debug)]
struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `e` comes from writing to a stdout whose reader has gone.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// The exit status for a command that failed with `e`, after telling the person why: 0 and
/// nothing said when stdout was closed (whoever read it took what they wanted), else the error
/// on stderr with the terminal's hint and 2.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if is_stdout_closed(e) {
        return 0;
    }
    eprintln!("error: {e:#}{}", cli_hint(e));
    2
}

/// Ends the process now as [`exit_code`] says; for a callback that cannot return the error
/// (a run's progress lines, printed while the facade waits for the run).
pub fn exit_now(e: anyhow::Error) -> ! {
    std::process::exit(exit_code(&e))
}

/// The terminal's words for what to do next, after the facade's surface-neutral message.
fn cli_hint(e: &anyhow::Error) -> &'static str {
    use noctune_studio::ErrorCode;
    match e.downcast_ref::<noctune_studio::OpError>().map(|o| o.code) {
        Some(ErrorCode::UnknownRun) => " (`noctune runs` lists them)",
        Some(ErrorCode::UnknownApproval) => " (`noctune approvals RUN` lists them)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    /// A pipe whose reader has gone.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    fn write_line(out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(out, "a line").context("printing the list")?;
        Ok(())
    }

    #[test]
    fn a_closed_stdout_ends_quietly_with_status_0() {
        let e = write_line(&mut Out::new(Closed)).unwrap_err();
        assert!(is_stdout_closed(&e), "{e:#}");
        assert_eq!(exit_code(&e), 0);
    }

    #[test]
    fn a_broken_pipe_to_another_process_is_an_error() {
        let e = write_line(&mut Closed).unwrap_err();
        assert!(!is_stdout_closed(&e), "{e:#}");
        assert_eq!(exit_code(&e), 2);
    }

    #[test]
    fn other_write_errors_of_stdout_are_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::StorageFull.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = write_line(&mut Out::new(Full)).unwrap_err();
        assert!(!is_stdout_closed(&e));
        assert_eq!(exit_code(&e), 2);
    }
}
