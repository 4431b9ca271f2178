//! `events.jsonl`: append-only, one `{idx, ts, type, payload}` per line, `idx` contiguous from
//! 0 even with several writers (the worker, and a host or reader that records a dead worker),
//! because every append takes the run's event lock and reads the last idx under it.

use super::paths::RunPaths;
use noctune_core::Event;
use noctune_core::event::EventPayload;
use noctune_util::time;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

/// What the reason of a failed patchset that was split says (the worker's `split_failed`);
/// the run's summary counts them by it. Here, not in the worker, so that the summary code
/// (`api`) does not depend on the worker.
pub(crate) const SPLIT_MARK: &str = "split into patchsets of";

pub struct EventLog {
    paths: RunPaths,
    /// (file length after our last append, next idx): lets the worker skip re-reading the
    /// tail when nobody else wrote in between, which is the common case.
    cache: std::sync::Mutex<Option<(u64, u64)>>,
}

impl EventLog {
    pub fn new(paths: &RunPaths) -> EventLog {
        EventLog {
            paths: paths.clone(),
            cache: std::sync::Mutex::new(None),
        }
    }

    /// Appends one event and returns it with its index. Events are written only from
    /// [`EventPayload`], so a payload's shape changes only with its type.
    pub fn append(&self, body: &EventPayload) -> std::io::Result<Event> {
        let path = self.paths.events();
        let mut f = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        f.lock()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let len = f.metadata()?.len();
        let idx = match *cache {
            Some((end, next)) if end == len => next,
            _ => next_idx(&mut f)?,
        };
        let ev = Event::new(idx, time::now_rfc3339(), body);
        let mut line = serde_json::to_vec(&ev).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.flush()?;
        *cache = Some((len + line.len() as u64, idx + 1));
        let _ = f.unlock();
        Ok(ev)
    }

    /// Events with `idx >= cursor`, at most `limit`. A missing file reads as empty.
    pub fn read_from(&self, cursor: u64, limit: usize) -> std::io::Result<Vec<Event>> {
        read_events(&self.paths, cursor, limit)
    }
}

pub fn read_events(paths: &RunPaths, cursor: u64, limit: usize) -> std::io::Result<Vec<Event>> {
    let mut f = match File::open(paths.events()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    // `idx` grows by one per line, so the line holding `cursor` can be found by bisecting
    // byte offsets: paging through a long log costs O(log n) seeks per page, not a rescan.
    let start = if cursor == 0 {
        0
    } else {
        offset_of(&mut f, cursor)?
    };
    f.seek(SeekFrom::Start(start))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // A torn last line (a writer killed mid-write) is skipped, not fatal.
        let Ok(ev) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if ev.idx >= cursor {
            out.push(ev);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// The `idx` of a line, read from its prefix without parsing the whole event.
fn line_idx(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"idx\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// A byte offset at or before the line with `idx == cursor` (and after every line with a
/// smaller idx that the bisection could rule out).
fn offset_of(f: &mut File, cursor: u64) -> std::io::Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    let (mut lo, mut hi) = (0u64, len);
    let mut buf = vec![0u8; 4096];
    while hi - lo > 4096 {
        let mid = lo + (hi - lo) / 2;
        f.seek(SeekFrom::Start(mid))?;
        let n = f.read(&mut buf)?;
        let Some(nl) = buf[..n].iter().position(|b| *b == b'\n') else {
            break;
        };
        let line_start = mid + nl as u64 + 1;
        f.seek(SeekFrom::Start(line_start))?;
        let n = f.read(&mut buf)?;
        match line_idx(&buf[..n]) {
            Some(idx) if idx < cursor => lo = line_start,
            Some(_) => hi = mid,
            None => break,
        }
    }
    Ok(lo)
}

/// The index after the last complete line of the file.
fn next_idx(f: &mut File) -> std::io::Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(0);
    }
    let window = len.min(64 * 1024);
    f.seek(SeekFrom::Start(len - window))?;
    let mut buf = Vec::with_capacity(window as usize);
    f.take(window).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    for line in text.lines().rev() {
        if let Ok(ev) = serde_json::from_str::<Event>(line) {
            return Ok(ev.idx + 1);
        }
    }
    // No complete line in the window: count lines from the start (slow path, rare).
    f.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    for line in BufReader::new(&mut *f).lines() {
        if serde_json::from_str::<Event>(&line?).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Follows `events.jsonl` from a byte offset, so a watcher reads each line once.
pub struct EventTail {
    path: std::path::PathBuf,
    offset: u64,
}

impl EventTail {
    pub fn new(paths: &RunPaths) -> EventTail {
        EventTail {
            path: paths.events(),
            offset: 0,
        }
    }

    /// Complete lines appended since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<Event>> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        self.offset += last_nl as u64 + 1;
        Ok(buf[..last_nl]
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Event>(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_core::RunId;
    use noctune_core::event::LogLevel;

    #[test]
    fn paging_from_any_cursor_returns_contiguous_events() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path(), &RunId::parse("r1").unwrap());
        std::fs::create_dir_all(&paths.run_dir).unwrap();
        let log = EventLog::new(&paths);
        for i in 0..3000u64 {
            log.append(&EventPayload::Log {
                level: LogLevel::Info,
                message: format!("{i} {}", "x".repeat((i % 97) as usize)),
                file: None,
                project: None,
            })
            .unwrap();
        }
        for cursor in [0u64, 1, 2, 999, 1000, 1777, 2998, 2999, 3000, 5000] {
            let page = read_events(&paths, cursor, 50).unwrap();
            let want: Vec<u64> = (cursor..3000.min(cursor + 50)).collect();
            assert_eq!(
                page.iter().map(|e| e.idx).collect::<Vec<_>>(),
                want,
                "cursor {cursor}"
            );
        }
        assert_eq!(line_idx(b"{\"idx\":42,\"ts\":\"x\"}"), Some(42));
    }
}
