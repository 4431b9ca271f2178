//! The worker's context for one run: what it was configured with, its worktree and audit DB,
//! and the calls proposers and the worker's steps share (events, stage and status, tools, the
//! model). [`Halt`] is why a step stops the run.

use super::events::EventLog;
use super::paths::RunPaths;
use super::runfile;
use super::tools::{self, ToolOutcome};
use globset::GlobSet;
use noctune_config::{Config, ModelProfile, ToolDef};
use noctune_core::event::EventPayload;
use noctune_core::patchset::CheckReport;
use noctune_core::{ApprovalRequest, Event, PolicyPack, RunRecord, RunStatus};
use noctune_store::AuditStore;
use std::path::PathBuf;
use std::time::Duration;

/// Why the worker stops doing steps.
#[derive(Debug)]
pub enum Halt {
    Stop,
    Fail(String),
}

impl Halt {
    pub fn from_display(e: impl std::fmt::Display) -> Halt {
        Halt::Fail(e.to_string())
    }
}

impl From<std::io::Error> for Halt {
    fn from(e: std::io::Error) -> Halt {
        Halt::Fail(format!("IO error: {e}"))
    }
}

pub struct RunCtx {
    pub paths: RunPaths,
    pub cfg: Config,
    pub pack: PolicyPack,
    pub profile: ModelProfile,
    pub wt: git2::Repository,
    pub store: AuditStore,
    /// The requests this worker has checked, so it checks each once ([`VerifiedMemo`]).
    pub verified: super::verified::VerifiedMemo,
    /// The worktree was made or recycled by this worker, so it is known to be clean.
    pub worktree_fresh: bool,
    events: EventLog,
    pending_db: Vec<Event>,
    pending_approvals: Vec<ApprovalRequest>,
    globs: GlobSet,
    tool_seq: u32,
    runtime: Option<tokio::runtime::Runtime>,
}

pub fn compile_globs(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("glob {g:?}: {e}"))?;
        b.add(glob);
    }
    b.build().map_err(|e| e.to_string())
}

impl RunCtx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        paths: RunPaths,
        cfg: Config,
        pack: PolicyPack,
        profile: ModelProfile,
        wt: git2::Repository,
        store: AuditStore,
        events: EventLog,
        globs: GlobSet,
    ) -> RunCtx {
        RunCtx {
            paths,
            cfg,
            pack,
            profile,
            wt,
            store,
            verified: Default::default(),
            worktree_fresh: false,
            events,
            pending_db: Vec::new(),
            pending_approvals: Vec::new(),
            globs,
            tool_seq: 0,
            runtime: None,
        }
    }

    /// Records an event (in `events.jsonl` now, in the audit DB with the next flush).
    pub fn emit(&mut self, body: EventPayload) -> Result<Event, Halt> {
        let ev = self.events.append(&body)?;
        self.pending_db.push(ev.clone());
        if self.pending_db.len() >= 256 {
            self.flush_db();
        }
        Ok(ev)
    }

    /// Sends buffered events to the audit DB. A DB failure is logged, never fatal: the files
    /// are the source of truth and the end-of-run ingest retries.
    pub fn flush_db(&mut self) {
        if !self.pending_approvals.is_empty() {
            if let Err(e) = self.store.upsert_approvals(&self.pending_approvals) {
                tracing::warn!("audit DB approval ingest failed (will retry at run end): {e}");
            }
            self.pending_approvals.clear();
        }
        if self.pending_db.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .ingest_events(&self.paths.run_id, &self.pending_db)
        {
            tracing::warn!("audit DB ingest failed (will retry at run end): {e}");
        }
        self.pending_db.clear();
    }

    /// Queues an approval request for the audit DB (its file is already written).
    pub fn record_approval(&mut self, req: ApprovalRequest) {
        self.pending_approvals.push(req);
    }

    pub fn stop_requested(&self) -> bool {
        self.paths.stop_request().exists()
    }

    pub fn check_stop(&self) -> Result<(), Halt> {
        if self.stop_requested() {
            Err(Halt::Stop)
        } else {
            Ok(())
        }
    }

    pub fn worktree_path(&self) -> PathBuf {
        self.paths.worktree()
    }

    pub fn in_globs(&self, path: &str) -> bool {
        self.globs.is_match(path)
    }

    pub fn tests_available(&self) -> bool {
        self.pack
            .checks
            .iter()
            .any(|c| self.pack.tool_allowed(c) && self.cfg.tools.contains_key(c))
    }

    pub fn tool(&self, name: &str) -> Result<ToolDef, Halt> {
        self.cfg
            .tools
            .get(name)
            .cloned()
            .ok_or_else(|| Halt::Fail(format!("tool {name:?} is not defined in [tools]")))
    }

    pub fn set_stage(&mut self, stage: &str) -> Result<(), Halt> {
        let s = stage.to_string();
        let rec = runfile::update(&self.paths, |r| {
            r.stage = s;
            None
        })
        .map_err(Halt::from_display)?;
        self.emit(EventPayload::Stage {
            stage: stage.to_string(),
        })?;
        self.sync_run(&rec);
        Ok(())
    }

    pub fn set_status(&mut self, to: RunStatus, error: Option<String>) -> Result<RunRecord, Halt> {
        let rec = runfile::update(&self.paths, |r| {
            if error.is_some() {
                r.error = error.clone();
            }
            Some(to)
        })
        .map_err(Halt::from_display)?;
        self.emit(EventPayload::StatusChanged {
            status: to,
            error,
            resumed: None,
        })?;
        self.sync_run(&rec);
        Ok(rec)
    }

    fn sync_run(&mut self, rec: &RunRecord) {
        self.flush_db();
        if let Err(e) = self.store.upsert_run(rec) {
            tracing::warn!("audit DB run update failed: {e}");
        }
    }

    pub fn run_tool(
        &mut self,
        tool: &ToolDef,
        files: &[String],
        stage: &str,
    ) -> Result<ToolOutcome, Halt> {
        let (outcome, _) = self.run_logged(tool, stage, |_| tools::argv(tool, files))?;
        Ok(outcome)
    }

    /// Runs a fixer on `files` ([`tools::fixer_argv`]); returns its outcome and log.
    pub fn run_fixer(
        &mut self,
        tool: &ToolDef,
        files: &[String],
        stage: &str,
    ) -> Result<(ToolOutcome, PathBuf), Halt> {
        self.run_logged(tool, stage, |_| tools::fixer_argv(tool, files))
    }

    /// Runs a check tool and reads what it showed ([`tools::check_report`]); pytest writes
    /// its per-test results next to the log. Returns the outcome too, for its output tail.
    pub fn run_check_tool(
        &mut self,
        tool: &ToolDef,
        files: &[String],
        stage: &str,
    ) -> Result<(ToolOutcome, CheckReport), Halt> {
        let pytest = tools::is_pytest(tool);
        let mut junit = None;
        let (outcome, log) = self.run_logged(tool, stage, |log| {
            let j = log.with_extension("junit.xml");
            let args = tools::check_argv(tool, files, pytest.then_some(j.as_path()));
            if pytest {
                // A report of an earlier worker at this path must not stand for this run's.
                let _ = std::fs::remove_file(&j);
                junit = Some(j);
            }
            args
        })?;
        let report = tools::check_report(&outcome, &log, junit.as_deref());
        Ok((outcome, report))
    }

    /// Runs `tool` with the argv `args` makes from its log's path, recording its start and end.
    fn run_logged(
        &mut self,
        tool: &ToolDef,
        stage: &str,
        args: impl FnOnce(&std::path::Path) -> Vec<String>,
    ) -> Result<(ToolOutcome, PathBuf), Halt> {
        self.tool_seq += 1;
        let log_dir = self.paths.run_dir.join("tools");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("{:03}-{}.log", self.tool_seq, tool.name));
        let argv = args(&log);
        self.emit(EventPayload::ToolStarted {
            tool: tool.name.clone(),
            stage: stage.to_string(),
            argv: argv.clone(),
        })?;
        let stop_file = self.paths.stop_request();
        let outcome = tools::run_argv(
            &argv,
            Duration::from_secs(tool.timeout_secs),
            &self.worktree_path(),
            &log,
            &|| stop_file.exists(),
        )?;
        let (exit_code, elapsed_ms) = match &outcome {
            ToolOutcome::Finished { code, elapsed, .. } => {
                (Some(*code), Some(elapsed.as_millis() as u64))
            }
            _ => (None, None),
        };
        self.emit(EventPayload::ToolFinished {
            tool: tool.name.clone(),
            stage: stage.to_string(),
            ok: outcome.succeeded(),
            exit_code,
            elapsed_ms,
            outcome: outcome.describe(),
            log: log.display().to_string(),
        })?;
        if let ToolOutcome::Interrupted = outcome {
            return Err(Halt::Stop);
        }
        Ok((outcome, log))
    }

    fn runtime(&mut self) -> Result<&tokio::runtime::Runtime, Halt> {
        if self.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            self.runtime = Some(rt);
        }
        self.runtime
            .as_ref()
            .ok_or_else(|| Halt::Fail("no runtime".into()))
    }

    /// Runs an async HTTP job on this worker's runtime with a shared client.
    pub fn block_on_http<F, Fut, T>(&mut self, job: F) -> Result<T, String>
    where
        F: FnOnce(reqwest::Client) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        noctune_llm::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let rt = self.runtime().map_err(|_| "no async runtime".to_string())?;
        Ok(rt.block_on(job(client)))
    }

    /// Asks the profile's model to rewrite one symbol; `retry` carries a previous attempt and
    /// the gate's error for a repair.
    pub fn ask_model(
        &mut self,
        instructions: &str,
        path: &str,
        original: &str,
        retry: Option<(&str, &str)>,
    ) -> Result<String, String> {
        use noctune_llm::{ChatMessage, LlmClient, LlmEndpoint};
        let p = self.profile.clone();
        let mut endpoint = LlmEndpoint::new(&p.base_url, &p.model);
        endpoint.temperature = p.temperature;
        endpoint.max_tokens = p.max_tokens;
        endpoint.request_timeout = Duration::from_secs(p.timeout_secs);
        endpoint.api_key = p.api_key_env.as_ref().and_then(|v| std::env::var(v).ok());
        let client = LlmClient::new(endpoint).map_err(|e| e.to_string())?;
        let mut messages = vec![
            ChatMessage::system(
                "You rewrite one Python symbol at a time. Reply with the complete rewritten symbol \
                 (decorators, signature and body) in a single ```python fenced block and nothing else.",
            ),
            ChatMessage::user(format!(
                "{instructions}\n\nFile: {path}\n\n```python\n{original}\n```"
            )),
        ];
        if let Some((attempt, err)) = retry {
            messages.push(ChatMessage::assistant(format!("```python\n{attempt}\n```")));
            messages.push(ChatMessage::user(format!(
                "That code does not parse: {err}\nReply with a corrected version of the whole symbol."
            )));
        }
        let rt = self.runtime().map_err(|_| "no async runtime".to_string())?;
        let reply = rt
            .block_on(client.complete_text(messages))
            .map_err(|e| e.to_string())?;
        let code = super::symbols::extract_code(&reply);
        if code.trim().is_empty() {
            return Err("the model's reply contained no code".into());
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_python_globs_take_sources_and_stubs_at_any_depth_and_nothing_else() {
        let pack = PolicyPack::builtins()
            .into_iter()
            .find(|p| p.name == "lint_fix")
            .unwrap();
        let globs = compile_globs(&pack.allowed_globs).unwrap();
        for yes in ["a.py", "a.pyi", "pkg/sub/m.py", "typings/pkg/__init__.pyi"] {
            assert!(globs.is_match(yes), "{yes}");
        }
        for no in [
            "README.md",
            "docs/index.md",
            "pkg/data.json",
            "a.pyc",
            "setup.cfg",
        ] {
            assert!(!globs.is_match(no), "{no}");
        }
    }
}
