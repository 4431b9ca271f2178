//! Proposers: turn a pack's proposer spec into [`Proposal`]s for files of the run's worktree.
//! Each proposer leaves the worktree as it found it (clean at HEAD); proposals are values.

use super::ctx::{Halt, RunCtx};
use super::gate_memo;
use super::gates;
use super::symbols;
use super::tools::{self, ToolOutcome};
use noctune_core::event::{EventPayload, Gate, LogLevel};
use noctune_core::patchset::CheckReport;
use noctune_core::{Proposal, ProposalSource, ProposerSpec};
use std::collections::BTreeMap;

/// Proposes edits for every file in scope (`only`: just these paths, for a re-proposal).
pub fn propose(ctx: &mut RunCtx, only: Option<&[String]>) -> Result<Vec<Proposal>, Halt> {
    let mut out = match ctx.pack.proposer.clone() {
        ProposerSpec::Command { tools } => command(ctx, &tools, only)?,
        ProposerSpec::Llm {
            instructions,
            max_symbols,
        } => llm(ctx, &instructions, max_symbols, only)?,
        ProposerSpec::DepsBump {
            index_url,
            allow_major,
        } => deps(ctx, &index_url, allow_major, only)?,
    };
    out.sort_by(|a, b| a.file_path.cmp(&b.file_path));
    Ok(out)
}

fn command(
    ctx: &mut RunCtx,
    tool_names: &[String],
    only: Option<&[String]>,
) -> Result<Vec<Proposal>, Halt> {
    // The fixers get the pack's files only (tracked, in its allowed_globs), so nothing outside
    // them is rewritten and then refused by policy; a fixer without `{files}` in its argv
    // decides for itself, and policy judges what it changed.
    let scope: Vec<String> = scope_files(ctx, only, |_| true)?
        .into_iter()
        .filter(|p| ctx.in_globs(p))
        .collect();
    for name in tool_names {
        ctx.check_stop()?;
        if !ctx.pack.tool_allowed(name) {
            ctx.emit(EventPayload::ToolSkipped {
                tool: name.clone(),
                reason: NOT_ALLOWED.into(),
                stage: "propose".into(),
            })?;
            continue;
        }
        let tool = ctx.tool(name)?;
        let files = if tools::takes_files(&tool) {
            tools::fixer_files(&tool, &scope)
        } else {
            Vec::new()
        };
        if tools::takes_files(&tool) && files.is_empty() {
            ctx.emit(EventPayload::ToolSkipped {
                tool: name.clone(),
                reason: "no tracked file it takes matches the pack's allowed_globs".into(),
                stage: "propose".into(),
            })?;
            continue;
        }
        let runs = if files.is_empty() {
            vec![&files[..]]
        } else {
            tools::batches(&files, tools::MAX_FILE_ARGS_BYTES)
        };
        for batch in runs {
            let (outcome, log) = ctx.run_fixer(&tool, batch, "propose")?;
            match outcome {
                ToolOutcome::NotFound { .. } => {
                    return Err(Halt::Fail(format!(
                        "fixer tool {name}: {}",
                        outcome.describe()
                    )));
                }
                ToolOutcome::Finished { code: 0, .. } => {}
                // What it changed before failing is still proposed (and gated); why it
                // failed is said in its own words, which `exit code 2` alone is not.
                _ => {
                    ctx.emit(warn(format!(
                        "fixer {name} failed ({}): {}",
                        outcome.describe(),
                        tools::error_text(&log)
                    )))?;
                }
            }
        }
    }
    let t = std::time::Instant::now();
    let lap = |what: &str| {
        tracing::debug!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "harvest: {what}"
        );
    };
    let ruff_version = gate_memo::RuffVersion::ask(&ctx.worktree_path());
    let changed = noctune_git::changed_files(&ctx.wt).map_err(Halt::from_display)?;
    lap("status");
    let changed: Vec<String> = match only {
        Some(only) => changed.into_iter().filter(|p| only.contains(p)).collect(),
        None => changed,
    };
    let wt_root = ctx.worktree_path();
    // Both sides of every change, read before any gate: HEAD's tree once for all the
    // pre-images (not once per file), the fixed files from disk. Each side's blob id keys the
    // gates' answers in the memo of earlier runs.
    let (tree, befores) = head_blobs(&ctx.wt, &changed).map_err(Halt::from_display)?;
    let layout = gate_memo::TreeLayout::of(&ctx.wt, &tree).ok();
    drop(tree);
    let afters: Vec<std::io::Result<Vec<u8>>> = changed
        .iter()
        .map(|p| std::fs::read(wt_root.join(p)))
        .collect();
    let after_ids: Vec<Option<git2::Oid>> = afters
        .iter()
        .map(|a| {
            let a = a.as_ref().ok()?;
            git2::Oid::hash_object(git2::ObjectType::Blob, a).ok()
        })
        .collect();
    let texts = |b: &Option<(git2::Oid, Vec<u8>)>, a: &[u8]| {
        (
            String::from_utf8_lossy(b.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default())
                .into_owned(),
            String::from_utf8_lossy(a).into_owned(),
        )
    };
    lap("both sides read");
    let db = ctx.store.path().to_path_buf();
    // The cross-file gate's parse of each edit runs beside the ruff gates below, for the edits
    // the memo has no answer for.
    let mut removed_memo = gate_memo::removed_names_memo(&db);
    let mut known = Vec::new();
    let mut ask = Vec::new();
    for (i, path) in changed.iter().enumerate() {
        let (Some(after), Some(after_id)) = (afters[i].as_ref().ok(), after_ids[i]) else {
            continue;
        };
        let (before, after) = texts(&befores[i], after);
        if before == after || !super::pyindex::is_python(path) {
            continue;
        }
        let key = befores[i]
            .as_ref()
            .map(|(before_id, _)| gate_memo::edit_key(before_id, &after_id));
        match key.as_deref().and_then(|k| removed_memo.get(k)) {
            Some(names) => known.push(((path.clone(), before, after), names)),
            None => ask.push((key, (path.clone(), before, after))),
        }
    }
    super::crossfile::known_removed(ctx, &known)?;
    drop(known);
    let (ask_keys, ask): (Vec<Option<String>>, Vec<_>) = ask.into_iter().unzip();
    let prefetch = super::crossfile::Prefetch::start(ctx, ask)?;
    // Gates on the fixed files, checked on disk in one batch before restoring: the output must
    // still parse, and it may not add lint findings. One ruff run with the project's rules
    // answers both (ruff reports syntax errors whatever is selected); when it cannot run with
    // that configuration, the parse gate still runs on ruff's own defaults.
    let mut lint_memo = layout
        .as_ref()
        .and_then(|layout| {
            gate_memo::lint_memo(&db, &wt_root, ruff_version, layout, gates::LINT_FLAGS)
        })
        .unwrap_or_else(gate_memo::LintMemo::disabled);
    // The memo's answers hold for the commit's files at any content, not for another set of
    // files or another ruff configuration.
    let same_files = changed
        .iter()
        .zip(befores.iter().zip(&afters))
        .all(|(p, (b, a))| b.is_some() && a.is_ok() && !gate_memo::is_ruff_config(p));
    let py: Vec<(String, git2::Oid)> = changed
        .iter()
        .zip(&after_ids)
        .filter(|(p, _)| super::pyindex::is_python(p))
        .filter_map(|(p, id)| Some((p.clone(), (*id)?)))
        .collect();
    let lint_after = if same_files {
        gates::ruff_lint_memo(&wt_root, &py, &mut lint_memo)
    } else {
        gates::ruff_lint_memo(&wt_root, &py, &mut gate_memo::LintMemo::disabled())
    };
    lap("lint (and parse) of the fixed files");
    let parse_errors = match &lint_after {
        Ok(lint) => lint.syntax.clone(),
        Err(_) => {
            let py: Vec<String> = py.iter().map(|(p, _)| p.clone()).collect();
            match gates::ruff_parse_errors(&wt_root, &py) {
                Ok(errors) => errors,
                Err(gates::GateUnavailable::Missing(why)) => {
                    ctx.emit(warn(format!("parse gate skipped: {why}")))?;
                    BTreeMap::new()
                }
            }
        }
    };
    let before_ids: BTreeMap<String, git2::Oid> = changed
        .iter()
        .zip(&befores)
        .filter_map(|(p, b)| Some((p.clone(), b.as_ref()?.0)))
        .collect();
    let mut proposals = Vec::new();
    for ((path, before), after) in changed.iter().zip(befores).zip(afters) {
        // Roll the worktree back by hand: we hold the pre-image already, and a forced checkout
        // of hundreds of paths costs more than writing them. In place, not by rename: the
        // worktree is the run's own, and a worker that dies here finds it reset on restart.
        match &before {
            Some((_, b)) => noctune_util::fsx::overwrite(&wt_root.join(path), b)?,
            None => {
                let _ = std::fs::remove_file(wt_root.join(path));
            }
        }
        let Ok(after) = after else {
            ctx.emit(EventPayload::EditDropped {
                file: path.clone(),
                reason: "the tool deleted the file; deletions are not proposed".into(),
                gate: None,
                symbol: None,
            })?;
            continue;
        };
        if let Some(err) = parse_errors.get(path) {
            ctx.emit(EventPayload::EditDropped {
                file: path.clone(),
                reason: format!("does not parse after the fixer: {err}"),
                gate: Some(Gate::Parse),
                symbol: None,
            })?;
            continue;
        }
        let (before, after) = texts(&before, &after);
        if before == after {
            continue;
        }
        proposals.push(Proposal {
            file_path: path.clone(),
            symbol: String::new(),
            before,
            after,
            source: ProposalSource::Command,
            major_bump: false,
        });
    }
    // Gate: the edit may not add lint findings (the project's ruff rules, before vs after;
    // the worktree holds the pre-images again now).
    lap("pre-images restored");
    let regressions = lint_after.and_then(|after| {
        lint_regressions(&wt_root, &after, &proposals, &before_ids, &mut lint_memo)
    });
    match regressions {
        Ok(adding) => {
            lap("lint of the pre-images with findings after");
            for (path, new) in &adding {
                ctx.emit(EventPayload::EditDropped {
                    file: path.clone(),
                    reason: format!("the edit adds lint findings {}", new.join(", ")),
                    gate: Some(Gate::Lint),
                    symbol: None,
                })?;
            }
            proposals.retain(|p| !adding.iter().any(|(path, _)| *path == p.file_path));
        }
        Err(gates::GateUnavailable::Missing(why)) => {
            ctx.emit(warn(format!("lint gate skipped: {why}")))?;
        }
    }
    let parsed = prefetch.finish();
    lap("cross-file parse joined");
    for (key, (_, names)) in ask_keys.into_iter().zip(parsed) {
        if let Some(key) = key {
            removed_memo.put(key, names);
        }
    }
    removed_memo.save();
    lint_memo.save();
    for p in &proposals {
        ctx.emit(EventPayload::EditProposed {
            file: p.file_path.clone(),
            source: ProposalSource::Command,
            symbols: None,
            bumps: None,
            major: None,
        })?;
    }
    Ok(proposals)
}

/// The proposed Python files whose edit adds lint findings, with the findings it adds:
/// `after` against a lint of the worktree (which holds the pre-images). A file without
/// findings after the edit cannot have gained any, so only the others are linted again.
fn lint_regressions(
    wt_root: &std::path::Path,
    after: &gates::Lint,
    proposals: &[Proposal],
    before_ids: &BTreeMap<String, git2::Oid>,
    memo: &mut gate_memo::LintMemo,
) -> Result<Vec<(String, Vec<String>)>, gates::GateUnavailable> {
    let again: Vec<String> = proposals
        .iter()
        .map(|p| p.file_path.clone())
        .filter(|p| super::pyindex::is_python(p) && after.has_findings(p))
        .collect();
    // A file HEAD does not have had no findings: all of its findings are new.
    let at_head: Vec<(String, git2::Oid)> = again
        .iter()
        .filter_map(|p| Some((p.clone(), *before_ids.get(p)?)))
        .collect();
    let before = gates::ruff_lint_memo(wt_root, &at_head, memo)?.counts;
    let empty = BTreeMap::new();
    Ok(again
        .into_iter()
        .filter_map(|path| {
            let new = gates::new_findings(
                before.get(&path).unwrap_or(&empty),
                after.counts.get(&path).unwrap_or(&empty),
            );
            (!new.is_empty()).then_some((path, new))
        })
        .collect())
}

/// HEAD's tree, and the blob id and content of each of `paths` in it (`None` for a path
/// HEAD does not have).
type HeadBlobs<'r> = (git2::Tree<'r>, Vec<Option<(git2::Oid, Vec<u8>)>>);

fn head_blobs<'r>(
    wt: &'r git2::Repository,
    paths: &[String],
) -> Result<HeadBlobs<'r>, git2::Error> {
    let tree = wt.head()?.peel_to_tree()?;
    let blobs = paths
        .iter()
        .map(|p| match tree.get_path(std::path::Path::new(p)) {
            Ok(entry) => Ok(entry
                .to_object(wt)?
                .as_blob()
                .map(|b| (b.id(), b.content().to_vec()))),
            Err(_) => Ok(None),
        })
        .collect::<Result<_, git2::Error>>()?;
    Ok((tree, blobs))
}

fn scope_files(
    ctx: &RunCtx,
    only: Option<&[String]>,
    filter: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Halt> {
    let all = noctune_git::head_files(&ctx.wt).map_err(Halt::from_display)?;
    Ok(all
        .into_iter()
        .filter(|p| only.is_none_or(|o| o.contains(p)))
        .filter(|p| !p.starts_with(super::paths::CACHE_DIR))
        .filter(|p| filter(p))
        .collect())
}

fn read_wt(ctx: &RunCtx, path: &str) -> Option<String> {
    std::fs::read_to_string(ctx.worktree_path().join(path)).ok()
}

fn llm(
    ctx: &mut RunCtx,
    instructions: &str,
    max_symbols: usize,
    only: Option<&[String]>,
) -> Result<Vec<Proposal>, Halt> {
    let files = scope_files(ctx, only, |p| p.ends_with(".py"))?;
    let files: Vec<String> = files.into_iter().filter(|p| ctx.in_globs(p)).collect();
    let corpus: String = files
        .iter()
        .filter_map(|f| read_wt(ctx, f))
        .collect::<Vec<_>>()
        .join("\n");
    let mut proposals = Vec::new();
    for path in files {
        ctx.check_stop()?;
        let Some(text) = read_wt(ctx, &path) else {
            continue;
        };
        let chosen = symbols::choose(&text, &corpus, max_symbols);
        if chosen.is_empty() {
            continue;
        }
        let mut rewrites = Vec::new();
        for sym in &chosen {
            ctx.check_stop()?;
            let original = symbols::source_of(&text, sym);
            match ctx.ask_model(instructions, &path, &original, None) {
                Ok(code) => rewrites.push((sym.clone(), code)),
                Err(e) => {
                    ctx.emit(EventPayload::EditDropped {
                        file: path.clone(),
                        reason: format!("model request failed: {e}"),
                        gate: None,
                        symbol: Some(sym.name.clone()),
                    })?;
                }
            }
        }
        if rewrites.is_empty() {
            continue;
        }
        let names: Vec<String> = rewrites.iter().map(|(s, _)| s.name.clone()).collect();
        let mut after = symbols::replace(&text, &rewrites);
        // Gate 1: it must parse. One repair attempt with the error, then drop.
        if let Some(err) = parse_error(ctx, &path, &after)? {
            let mut repaired = None;
            let mut fixed = Vec::new();
            for (sym, code) in &rewrites {
                match ctx.ask_model(
                    instructions,
                    &path,
                    &symbols::source_of(&text, sym),
                    Some((code, &err)),
                ) {
                    Ok(c) => fixed.push((sym.clone(), c)),
                    Err(_) => break,
                }
            }
            if fixed.len() == rewrites.len() {
                let candidate = symbols::replace(&text, &fixed);
                if parse_error(ctx, &path, &candidate)?.is_none() {
                    repaired = Some(candidate);
                }
            }
            match repaired {
                Some(c) => {
                    ctx.emit(EventPayload::EditRepaired {
                        file: path.clone(),
                        gate: Gate::Parse,
                        how: "asked the model again with the error".into(),
                        error: Some(err),
                        findings: None,
                    })?;
                    after = c;
                }
                None => {
                    ctx.emit(EventPayload::EditDropped {
                        file: path.clone(),
                        reason: format!("the model's code does not parse: {err}"),
                        gate: Some(Gate::Parse),
                        symbol: Some(names.join(", ")),
                    })?;
                    continue;
                }
            }
        }
        // Gate 2: lint may not get worse; ruff --fix repairs what it can.
        match lint_gate(&path, &text, &after) {
            Ok(LintGate::Pass) => {}
            Ok(LintGate::Repaired(fixed, codes)) => {
                ctx.emit(EventPayload::EditRepaired {
                    file: path.clone(),
                    gate: Gate::Lint,
                    how: "ruff --fix".into(),
                    error: None,
                    findings: Some(codes),
                })?;
                after = fixed;
            }
            Ok(LintGate::Fail(codes)) => {
                ctx.emit(EventPayload::EditDropped {
                    file: path.clone(),
                    reason: format!("adds lint findings {}", codes.join(", ")),
                    gate: Some(Gate::Lint),
                    symbol: None,
                })?;
                continue;
            }
            Err(why) => {
                ctx.emit(warn(format!("lint gate skipped for {path}: {why}")))?;
            }
        }
        if after == text {
            continue;
        }
        ctx.emit(EventPayload::EditProposed {
            file: path.clone(),
            source: ProposalSource::Llm,
            symbols: Some(names.clone()),
            bumps: None,
            major: None,
        })?;
        proposals.push(Proposal {
            file_path: path,
            symbol: names.join(", "),
            before: text,
            after,
            source: ProposalSource::Llm,
            major_bump: false,
        });
    }
    Ok(proposals)
}

fn parse_error(ctx: &mut RunCtx, path: &str, src: &str) -> Result<Option<String>, Halt> {
    let one = BTreeMap::from([(path.to_string(), src.to_string())]);
    match gates::python_parse_errors(&one) {
        Ok(mut e) => Ok(e.remove(path)),
        Err(gates::GateUnavailable::Missing(why)) => {
            ctx.emit(warn(format!("parse gate skipped: {why}")))?;
            Ok(None)
        }
    }
}

enum LintGate {
    Pass,
    Repaired(String, Vec<String>),
    Fail(Vec<String>),
}

fn lint_gate(path: &str, before: &str, after: &str) -> Result<LintGate, String> {
    let unavailable = |gates::GateUnavailable::Missing(w)| w;
    let b = gates::lint_codes(path, before).map_err(unavailable)?;
    let a = gates::lint_codes(path, after).map_err(unavailable)?;
    let new = gates::new_findings(&b, &a);
    if new.is_empty() {
        return Ok(LintGate::Pass);
    }
    let fixed = gates::ruff_fix(path, after).map_err(unavailable)?;
    let f = gates::lint_codes(path, &fixed).map_err(unavailable)?;
    if gates::new_findings(&b, &f).is_empty() && !fixed.trim().is_empty() {
        Ok(LintGate::Repaired(fixed, new))
    } else {
        Ok(LintGate::Fail(new))
    }
}

fn deps(
    ctx: &mut RunCtx,
    index_url: &str,
    allow_major: bool,
    only: Option<&[String]>,
) -> Result<Vec<Proposal>, Halt> {
    let files = scope_files(ctx, only, noctune_deps::is_deps_file)?;
    let contents: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| read_wt(ctx, f).map(|c| (f.clone(), c)))
        .collect();
    let (edits, warnings) = ctx
        .block_on_http(|client| {
            let index_url = index_url.to_string();
            async move { noctune_deps::propose(&client, &index_url, allow_major, &contents).await }
        })
        .map_err(|e| Halt::Fail(format!("deps_bump: {e}")))?
        .map_err(|e| Halt::Fail(format!("deps_bump: {e}")))?;
    for w in warnings {
        ctx.emit(EventPayload::Log {
            level: LogLevel::Warn,
            message: w.message,
            file: Some(w.file_path),
            project: Some(w.project),
        })?;
    }
    let mut out = Vec::new();
    for e in edits {
        if e.file_path.ends_with(".toml") {
            if let Err(err) = e.after.parse::<toml::Table>() {
                ctx.emit(EventPayload::EditDropped {
                    file: e.file_path.clone(),
                    reason: format!("not valid TOML after the bump: {err}"),
                    gate: Some(Gate::Parse),
                    symbol: None,
                })?;
                continue;
            }
        }
        let symbol = e
            .bumps
            .iter()
            .map(|b| format!("{} {}→{}", b.project, b.from, b.to))
            .collect::<Vec<_>>()
            .join(", ");
        let major = e.bumps.iter().any(|b| b.major);
        ctx.emit(EventPayload::EditProposed {
            file: e.file_path.clone(),
            source: ProposalSource::DepsBump,
            symbols: None,
            bumps: Some(symbol.clone()),
            major: Some(major),
        })?;
        out.push(Proposal {
            file_path: e.file_path,
            symbol,
            before: e.before,
            after: e.after,
            source: ProposalSource::DepsBump,
            major_bump: major,
        });
    }
    Ok(out)
}

/// Runs a check tool on a patchset's files (used by the worker before each commit): its
/// outcome (for the output's tail) and what it showed, to judge against the baseline.
pub fn run_check(
    ctx: &mut RunCtx,
    name: &str,
    files: &[String],
) -> Result<Option<(ToolOutcome, CheckReport)>, Halt> {
    if !ctx.pack.tool_allowed(name) {
        ctx.emit(EventPayload::ToolSkipped {
            tool: name.to_string(),
            reason: NOT_ALLOWED.into(),
            stage: "check".into(),
        })?;
        return Ok(None);
    }
    let tool = ctx.tool(name)?;
    Ok(Some(ctx.run_check_tool(&tool, files, "check")?))
}

/// A check's result on the worktree as it is, before any edit of a patchset (the base
/// commit, for the first): what a patchset's result is judged against. Taken once per commit
/// and check definition and kept in the run's `baselines/`, so a resumed worker does not take
/// it again. `probe`: also look for an installed copy of the project (once per run). `None`
/// for a check the pack does not allow (it is skipped on every patchset).
pub fn baseline(
    ctx: &mut RunCtx,
    name: &str,
    files: &[String],
    probe: bool,
) -> Result<Option<CheckReport>, Halt> {
    if !ctx.pack.tool_allowed(name) {
        return Ok(None);
    }
    let tool = ctx.tool(name)?;
    let commit = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
    let definition = format!("{}\0{}", tool.name, tools::argv(&tool, files).join("\0"));
    let key = &noctune_core::approval::content_sha(&definition)[..16];
    let path = ctx
        .paths
        .run_dir
        .join("baselines")
        .join(format!("{commit}-{key}.json"));
    let cached: Option<CheckReport> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (report, note, cached) = match cached {
        Some(r) => (r, None, true),
        None => {
            let note = if probe { shadow_note(ctx, &tool) } else { None };
            let (_, report) = ctx.run_check_tool(&tool, files, "baseline")?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            noctune_util::fsx::write_json_atomic(&path, &report)?;
            (report, note, false)
        }
    };
    let failing = report.failing();
    ctx.emit(EventPayload::CheckBaseline {
        tool: name.to_string(),
        status: report.status,
        failing_total: failing.len(),
        failing: failing.into_iter().take(50).collect(),
        summary: report.summary.clone(),
        cached,
        note,
    })?;
    Ok(Some(report))
}

/// Says so when the project is also installed where the tool's Python would import it from
/// (an editable install of the user's checkout, most often): the tools run with the worktree
/// first on `PYTHONPATH`, so they test the edits, not that copy.
fn shadow_note(ctx: &RunCtx, tool: &noctune_config::ToolDef) -> Option<String> {
    let program = tool.command.first()?;
    let is_python = |p: &str| {
        std::path::Path::new(p)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python"))
    };
    let python = if is_python(program) {
        program.as_str()
    } else {
        "python3"
    };
    let wt = ctx.worktree_path();
    let copies = tools::installed_copies(python, &wt, &tools::project_packages(&wt));
    if copies.is_empty() {
        return None;
    }
    let list: Vec<String> = copies
        .iter()
        .map(|(name, at)| format!("{name} ({at})"))
        .collect();
    Some(format!(
        "an installed copy of the project is importable: {}; checks run with the worktree first on PYTHONPATH, so they test the run's edits, not that copy",
        list.join(", ")
    ))
}

pub use tools::tail_of;

const NOT_ALLOWED: &str = "not in the pack's tools_allowed";

fn warn(message: String) -> EventPayload {
    EventPayload::Log {
        level: LogLevel::Warn,
        message,
        file: None,
        project: None,
    }
}
