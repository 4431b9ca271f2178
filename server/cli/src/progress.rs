//! How `noctune run` and `noctune resume` show a run they follow: a progress bar on a terminal,
//! plain lines off one (a pipe, CI), and in both cases no line per file while the run goes:
//! what happened to each file is one table when the run ends.
//!
//! On a repository of thousands of files a line per proposed, approved and decided file was a
//! scroll of hundreds of lines with no sense of how far the run was; the lines kept are the
//! ones about the run (stages, tools, failures, waiting for decisions), and the counts go into
//! the bar on a terminal (the run's own summary closes the output).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use noctune_core::Event;
use noctune_core::event::EventPayload as P;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

/// Most rows of the closing table; the rest are counted ("… and N more").
pub const MAX_TABLE_ROWS: usize = 40;

/// What happened to one file, as the closing table shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// What the pack's rules said: `auto-approved`, `needs approval`, `policy violation`,
    /// `refused`, `dropped`, or `proposed` before they spoke.
    pub verdict: String,
    pub risk: Option<u8>,
    /// Where it ended: `pending`, `approved`, `rejected`, `committed <sha>`, `not committed`,
    /// `tampered`, `stale`, or the verdict's own outcome.
    pub status: String,
}

impl Row {
    /// Rows a person should look at first: not on their way into a commit.
    fn needs_attention(&self) -> bool {
        !(self.status.starts_with("committed")
            || self.status == "approved"
            || self.status == "auto-approved")
    }
}

#[derive(Debug, Default)]
struct Counts {
    proposed: usize,
    dropped: usize,
    repaired: usize,
    auto_approved: usize,
    requested: usize,
    decided: usize,
    refused: usize,
    patchsets: usize,
    committed: usize,
    failed: usize,
}

/// Follows one run's events: prints the lines about the run as they come, keeps one [`Row`]
/// per file, and prints the table at [`Progress::finish`].
pub struct Progress {
    run_id: String,
    json: bool,
    bar: Option<ProgressBar>,
    stage: String,
    counts: Counts,
    rows: BTreeMap<String, Row>,
}

impl Progress {
    /// A bar when stdout is a terminal (and not `--json`), plain lines otherwise.
    pub fn new(run_id: &str, json: bool) -> Progress {
        let tty = !json
            && io::stdout().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        let bar = tty.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress::with_bar(run_id, json, bar)
    }

    fn with_bar(run_id: &str, json: bool, bar: Option<ProgressBar>) -> Progress {
        Progress {
            run_id: run_id.to_string(),
            json,
            bar,
            stage: String::new(),
            counts: Counts::default(),
            rows: BTreeMap::new(),
        }
    }

    /// Takes a batch of events: prints what is printed as it happens, updates the bar.
    pub fn events(&mut self, out: &mut dyn Write, evs: &[Event]) -> io::Result<()> {
        for ev in evs {
            if self.json {
                writeln!(out, "{}", serde_json::to_string(ev)?)?;
                continue;
            }
            let Some(body) = ev.body() else { continue };
            self.track(&body);
            if let Some(line) = self.line(&body) {
                self.print(out, &line)?;
            }
        }
        self.redraw();
        Ok(())
    }

    /// Prints above the bar (or plainly without one), so the bar is never torn by a line.
    fn print(&self, out: &mut dyn Write, line: &str) -> io::Result<()> {
        match &self.bar {
            Some(bar) => bar.suspend(|| writeln!(out, "{line}")),
            None => writeln!(out, "{line}"),
        }
    }

    /// Clears the bar and prints the table of files and the counts.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.json {
            return Ok(());
        }
        // The run's own summary (counts, commits) follows, from run.json.
        if self.rows.is_empty() {
            return Ok(());
        }
        write_table(out, &self.rows, MAX_TABLE_ROWS, &self.run_id)
    }

    fn row(&mut self, file: &str) -> &mut Row {
        self.rows.entry(file.to_string()).or_insert_with(|| Row {
            verdict: "proposed".into(),
            risk: None,
            status: "proposed".into(),
        })
    }

    fn set(&mut self, file: &str, verdict: Option<&str>, risk: Option<u8>, status: &str) {
        let row = self.row(file);
        if let Some(v) = verdict {
            row.verdict = v.to_string();
        }
        if risk.is_some() {
            row.risk = risk;
        }
        row.status = status.to_string();
    }

    fn track(&mut self, body: &P) {
        match body {
            P::Stage { stage } => self.stage = stage.clone(),
            P::EditProposed { file, .. } => {
                self.counts.proposed += 1;
                self.row(file);
            }
            P::EditRepaired { .. } => self.counts.repaired += 1,
            P::EditDropped { file, .. } => {
                self.counts.dropped += 1;
                self.set(file, Some("dropped"), None, "dropped");
            }
            P::PolicyViolation { file, .. } => {
                self.counts.refused += 1;
                self.set(file, Some("policy violation"), None, "refused");
            }
            P::EditRefused { file, .. } => {
                self.counts.refused += 1;
                self.set(file, Some("refused"), None, "refused");
            }
            P::AutoApproved {
                file, risk_score, ..
            } => {
                self.counts.auto_approved += 1;
                self.set(
                    file,
                    Some("auto-approved"),
                    Some(*risk_score),
                    "auto-approved",
                );
            }
            P::ApprovalRequested {
                file, risk_score, ..
            } => {
                self.counts.requested += 1;
                self.set(file, Some("needs approval"), Some(*risk_score), "pending");
            }
            P::ApprovalDecided { file, decision, .. } => {
                self.counts.decided += 1;
                let status = match decision {
                    noctune_core::Decision::Approve => "approved",
                    noctune_core::Decision::Reject => "rejected",
                };
                self.set(file, None, None, status);
            }
            P::ApprovalStale { file, .. } => self.set(file, None, None, "stale"),
            P::ApprovalTampered { file, .. } => self.set(file, None, None, "tampered"),
            P::PatchsetPlanned { of, .. } => self.counts.patchsets = *of,
            P::PatchsetCommitted { sha, files, .. } => {
                self.counts.committed += 1;
                let status = format!("committed {}", &sha[..sha.len().min(10)]);
                for f in files {
                    self.set(f, None, None, &status);
                }
            }
            P::PatchsetFailed { files, .. } => {
                self.counts.failed += 1;
                for f in files {
                    self.set(f, None, None, "not committed");
                }
            }
            _ => {}
        }
    }

    /// The line printed as it happens, for an event about the run (never one per file).
    fn line(&self, body: &P) -> Option<String> {
        Some(match body {
            P::Stage { stage } => format!("== {stage}"),
            P::ToolFinished {
                tool,
                stage,
                outcome,
                ..
            } => format!("  tool {tool} ({stage}): {outcome}"),
            P::ToolSkipped { tool, reason, .. } => format!("  tool {tool} skipped: {reason}"),
            P::PatchsetFailed {
                n,
                of,
                reason,
                output_tail,
                ..
            } => format!(
                "  patchset  [{n}/{of}] not committed: {reason}\n{}",
                indent(output_tail)
            ),
            P::ApprovalTampered { file, reason, .. } => format!("  TAMPERED  {file}: {reason}"),
            P::StatusChanged { status, .. } => {
                let mut line = format!("  status -> {status}");
                if *status == noctune_core::RunStatus::WaitingApproval {
                    let waiting = self.counts.requested.saturating_sub(self.counts.decided);
                    let id = &self.run_id;
                    line.push_str(&format!(
                        "\n  {waiting} edit(s) wait for a decision: `noctune approvals {id}` shows \
                         them; `noctune decide {id} --all-pending approve|reject` decides them \
                         all (--glob, --max-risk narrow it), `noctune decide {id} APPROVAL_ID \
                         approve|reject` one"
                    ));
                }
                line
            }
            P::Stopped { .. } => "  stopped".into(),
            P::RunFailed { error } => format!("  FAILED: {error}"),
            _ => return None,
        })
    }

    fn redraw(&self) {
        let Some(bar) = &self.bar else { return };
        let c = &self.counts;
        if c.patchsets > 0 {
            if bar.length() != Some(c.patchsets as u64) {
                bar.set_style(bar_style());
                bar.set_length(c.patchsets as u64);
            }
            bar.set_position((c.committed + c.failed) as u64);
        }
        // With a bar the patchsets are its position (and the stage); the message keeps the files.
        if c.patchsets > 0 {
            bar.set_message(self.counts_text(false));
        } else {
            bar.set_message(format!("{:<10} {}", self.stage, self.counts_text(true)));
        }
    }

    fn counts_text(&self, patchsets: bool) -> String {
        let c = &self.counts;
        let waiting = c.requested.saturating_sub(c.decided);
        let mut parts = vec![format!("{} proposed", c.proposed)];
        for (n, what) in [
            (c.repaired, "repaired"),
            (c.dropped, "dropped"),
            (c.refused, "refused"),
            (c.auto_approved, "auto-approved"),
            (c.decided, "decided"),
            (waiting, "waiting"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if patchsets && c.patchsets > 0 {
            parts.push(format!(
                "patchsets {}/{} committed",
                c.committed, c.patchsets
            ));
        }
        if c.failed > 0 {
            parts.push(format!("{} patchset(s) failed", c.failed));
        }
        parts.join(" · ")
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {elapsed:>4} [{bar:20}] {pos}/{len} patchsets  {wide_msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn indent(t: &str) -> String {
    t.lines()
        .map(|l| format!("            | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The table of files: those a person should look at first, then the rest, each by path; at
/// most `max` rows, then how many more and where to see them.
pub fn write_table(
    out: &mut dyn Write,
    rows: &BTreeMap<String, Row>,
    max: usize,
    run_id: &str,
) -> io::Result<()> {
    let mut ordered: Vec<(&String, &Row)> = rows.iter().collect();
    // Stable: within each group the paths stay sorted.
    ordered.sort_by_key(|(_, r)| !r.needs_attention());
    let shown = &ordered[..ordered.len().min(max)];
    let width = shown
        .iter()
        .map(|(f, _)| f.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 60);
    writeln!(
        out,
        "{:<width$}  {:<16}  {:>4}  STATUS",
        "FILE", "VERDICT", "RISK"
    )?;
    for (file, r) in shown {
        let risk = r.risk.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<width$}  {:<16}  {:>4}  {}",
            file, r.verdict, risk, r.status
        )?;
    }
    if ordered.len() > shown.len() {
        writeln!(
            out,
            "… and {} more (`noctune approvals {run_id}` lists every approval)",
            ordered.len() - shown.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_core::{Decision, ProposalSource, RunStatus};

    fn events(bodies: &[P]) -> Vec<Event> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| Event::new(i as u64, "2026-01-01T00:00:00Z".into(), b))
            .collect()
    }

    fn proposed(file: &str) -> P {
        P::EditProposed {
            file: file.into(),
            source: ProposalSource::Command,
            symbols: None,
            bumps: None,
            major: None,
        }
    }

    fn run_of(files: usize) -> Vec<Event> {
        let mut b = vec![P::Stage {
            stage: "propose".into(),
        }];
        for i in 0..files {
            let file = format!("pkg/m{i:03}.py");
            b.push(proposed(&file));
            if i % 10 == 0 {
                b.push(P::ApprovalRequested {
                    approval_id: format!("{i:020}"),
                    file: file.clone(),
                    symbol: String::new(),
                    risk_score: 40,
                    reason: "risk 40 > max_risk 30".into(),
                    lines: 3,
                    decide: "noctune decide …".into(),
                });
            } else {
                b.push(P::AutoApproved {
                    approval_id: format!("{i:020}"),
                    file,
                    risk_score: 2,
                    lines: 1,
                });
            }
        }
        b.push(P::StatusChanged {
            status: RunStatus::WaitingApproval,
            error: None,
            resumed: None,
        });
        b.push(P::ApprovalDecided {
            approval_id: format!("{:020}", 0),
            file: "pkg/m000.py".into(),
            decision: Decision::Approve,
            decided_by: "cli:me".into(),
            decided_at: "2026-01-01T00:00:01Z".into(),
            reason: String::new(),
        });
        b.push(P::PatchsetPlanned {
            n: 1,
            of: 1,
            files: vec!["pkg/m000.py".into()],
            approval_ids: vec![],
        });
        b.push(P::PatchsetCommitted {
            n: 1,
            of: 1,
            sha: "0123456789abcdef".into(),
            message: "m".into(),
            files: vec!["pkg/m000.py".into(), "pkg/m001.py".into()],
        });
        events(&b)
    }

    fn plain(evs: &[Event]) -> String {
        let mut p = Progress::with_bar("RUN", false, None);
        let mut out = Vec::new();
        for chunk in evs.chunks(7) {
            p.events(&mut out, chunk).unwrap();
        }
        p.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn off_a_terminal_files_are_a_capped_table_at_the_end_not_lines() {
        let text = plain(&run_of(100));
        let lines: Vec<&str> = text.lines().collect();
        // No line per file while the run goes: the stage, the status with the way to decide,
        // then the table.
        assert_eq!(lines[0], "== propose", "{text}");
        assert!(lines[1].contains("status -> waiting_approval"), "{text}");
        assert!(
            lines[2].contains("10 edit(s) wait for a decision")
                && lines[2].contains("noctune decide RUN --all-pending approve|reject"),
            "{text}"
        );
        assert!(lines[3].starts_with("FILE "), "{text}");
        assert_eq!(lines.len(), 4 + MAX_TABLE_ROWS + 1, "{text}");
        // The waiting ones come first, then the rest by path.
        assert!(
            lines[4].starts_with("pkg/m010.py") && lines[4].contains("pending"),
            "{text}"
        );
        assert!(lines[12].starts_with("pkg/m090.py"), "{text}");
        assert!(lines[13].starts_with("pkg/m000.py") && lines[13].contains("committed 0123456789"));
        assert!(lines[14].starts_with("pkg/m001.py") && lines[14].contains("auto-approved"));
        assert_eq!(
            lines[4 + MAX_TABLE_ROWS],
            "… and 60 more (`noctune approvals RUN` lists every approval)"
        );
        let mut p = Progress::with_bar("RUN", false, None);
        p.events(&mut Vec::new(), &run_of(100)).unwrap();
        assert_eq!(
            p.counts_text(true),
            "100 proposed · 90 auto-approved · 1 decided · 9 waiting · patchsets 1/1 committed"
        );
    }

    #[test]
    fn a_small_run_shows_every_file_and_json_stays_one_event_per_line() {
        let text = plain(&run_of(3));
        assert!(!text.contains("more"), "{text}");
        assert!(
            text.contains("pkg/m002.py  auto-approved        2  auto-approved"),
            "{text}"
        );
        assert!(
            text.contains("pkg/m000.py  needs approval      40  committed 0123456789"),
            "{text}"
        );

        let evs = run_of(3);
        let mut p = Progress::with_bar("RUN", true, None);
        let mut out = Vec::new();
        p.events(&mut out, &evs).unwrap();
        p.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), evs.len());
    }

    #[test]
    fn a_write_error_comes_back() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut p = Progress::with_bar("RUN", false, None);
        assert!(p.events(&mut Closed, &run_of(1)).is_err());
    }
}
