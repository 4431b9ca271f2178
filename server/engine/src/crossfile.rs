//! What an edit does to the other files of the repository, for the worker: the cross-file
//! gate (names an edit removes that other files use, from the [`PyIndex`] of the run's
//! worktree, go into [`EditFacts`] for `police`) and the import check of a patchset (the
//! modules it touches and their importers must still import if they did before).

use super::ctx::{Halt, RunCtx};
use super::pyindex::{self, PyIndex};
use super::tools::ToolOutcome;
use noctune_config::{ToolDef, ToolStage};
use noctune_core::event::{EventPayload, LogLevel};
use noctune_core::{ApprovedEdit, DecisionError, EditFacts, Proposal, Verdict, police};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The index of the last commit asked about. A worker is one run in one process, and an
/// index is only ever reused for the same worktree at the same commit, so it is never stale;
/// for another commit, the files whose blob is unchanged keep their parsed facts.
static INDEX: Mutex<Option<(PathBuf, String, Arc<PyIndex>)>> = Mutex::new(None);

/// The index of the worktree's Python files at its HEAD (the worktree holds no edit when it
/// is asked: proposers restore it, and a patchset is written only after this).
fn index(ctx: &RunCtx) -> Result<Arc<PyIndex>, Halt> {
    let head = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
    let root = ctx.worktree_path();
    let mut cache = INDEX.lock().unwrap_or_else(|e| e.into_inner());
    let previous = match cache.take() {
        Some((r, h, idx)) if r == root && h == head => {
            *cache = Some((r, h, idx.clone()));
            return Ok(idx);
        }
        Some((r, _, idx)) if r == root => Some(idx),
        _ => None,
    };
    let t = std::time::Instant::now();
    let files = python_blobs(&ctx.wt).map_err(Halt::from_display)?;
    let idx = Arc::new(PyIndex::build_reusing(
        files,
        |p| std::fs::read_to_string(root.join(p)).ok(),
        previous.as_deref(),
    ));
    tracing::debug!(
        files = idx.len(),
        elapsed_ms = t.elapsed().as_millis() as u64,
        "python module index built"
    );
    *cache = Some((root, head, idx.clone()));
    Ok(idx)
}

/// The Python files of HEAD's tree with their blob ids (outside the cache directory).
fn python_blobs(wt: &git2::Repository) -> Result<Vec<(String, Option<String>)>, git2::Error> {
    let tree = wt.head()?.peel_to_tree()?;
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob)
            && let Ok(name) = entry.name()
        {
            let path = format!("{dir}{name}");
            if pyindex::is_python(&path) && !path.starts_with(super::paths::CACHE_DIR) {
                out.push((path, Some(entry.id().to_string())));
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok(out)
}

/// The facts `police` judges an edit by: [`EditFacts::of`] the edit, and who else uses the
/// module-level names it removes.
pub fn edit_facts(ctx: &RunCtx, p: &Proposal) -> Result<EditFacts, Halt> {
    let mut facts = diff_facts(p);
    facts.removed_names_used_elsewhere = removed_names_used_elsewhere_cached(ctx, p)?;
    Ok(facts)
}

/// [`EditFacts::of`] an edit (a line diff of its texts), once per edit: the worker asks when
/// it polices an edit, again when it commits it and when it groups it into a patchset. Keyed
/// like [`REMOVED`], by the path and a keyed hash of both texts.
pub fn diff_facts(p: &Proposal) -> EditFacts {
    type Facts = std::collections::HashMap<(String, u64), EditFacts>;
    static FACTS: Mutex<Option<(RandomState, Facts)>> = Mutex::new(None);
    let key = {
        let mut cache = FACTS.lock().unwrap_or_else(|e| e.into_inner());
        let (state, map) = cache.get_or_insert_with(Default::default);
        let key = (p.file_path.clone(), state.hash_one((&p.before, &p.after)));
        if let Some(f) = map.get(&key) {
            return f.clone();
        }
        key
    };
    let facts = EditFacts::of(p);
    let mut cache = FACTS.lock().unwrap_or_else(|e| e.into_inner());
    let (_, map) = cache.get_or_insert_with(Default::default);
    map.insert(key, facts.clone());
    facts
}

/// What [`removed_names_used_elsewhere`] found, per (worktree, HEAD, edit). The worker asks
/// twice for every edit, when it polices it and again when it commits an auto-approved one
/// ([`still_auto_approved`]), and each answer parses the file twice; the second is the same
/// question (same content, same commit) and gets the same answer. The edit is keyed by its
/// path and a keyed hash of both texts: the hasher's keys are random per process, so no
/// content can be made to collide with another's entry.
type FactsKey = (PathBuf, String, String, u64);

static REMOVED: Mutex<Option<(RandomState, BTreeMap<FactsKey, Vec<String>>)>> = Mutex::new(None);

/// The names an edit removes, for the edits that remove some (keyed like [`REMOVED`]): the
/// answer of the gate's first question, so that neither [`prefetch`] nor the second question
/// parses the edit again for it.
static RAW_REMOVED: Mutex<Option<(RandomState, BTreeMap<FactsKey, RemovedNames>)>> =
    Mutex::new(None);

fn raw_removed(root: &Path, head: &str, p: &Proposal) -> Option<Vec<String>> {
    let mut cache = RAW_REMOVED.lock().unwrap_or_else(|e| e.into_inner());
    let (state, map) = cache.get_or_insert_with(Default::default);
    map.get(&facts_key(state, root, head, p)).cloned()
}

/// The index for the gate's second question, who uses a name an edit removes from a module:
/// built from every path (a file's module name depends on which folders are packages) but
/// parsing only the files that could use a module whose name ends in one of its leaves
/// ([`pyindex::could_use`]); the others have no uses of those modules, so the answer is the
/// whole index's. Per worktree and HEAD, grown when a module with another leaf is asked about.
type UsesIndex = (PathBuf, String, BTreeSet<String>, Arc<PyIndex>);
static USES: Mutex<Option<UsesIndex>> = Mutex::new(None);

/// `root` and `head`: the worktree's path and HEAD, which the caller has read already.
fn uses_index(
    ctx: &RunCtx,
    root: &Path,
    head: &str,
    leaves: &BTreeSet<String>,
) -> Result<Arc<PyIndex>, Halt> {
    // The whole index, when something else built it already, answers as well.
    if let Some((r, h, idx)) = INDEX.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && r == root
        && h == head
    {
        return Ok(idx.clone());
    }
    let mut cache = USES.lock().unwrap_or_else(|e| e.into_inner());
    let mut wanted = leaves.clone();
    if let Some((r, h, have, idx)) = cache.as_ref()
        && r == root
        && h == head
    {
        if leaves.is_subset(have) {
            return Ok(idx.clone());
        }
        wanted.extend(have.iter().cloned());
    }
    let t = std::time::Instant::now();
    let files = python_blobs(&ctx.wt).map_err(Halt::from_display)?;
    let idx = Arc::new(PyIndex::build_reusing(
        files,
        |p| {
            std::fs::read_to_string(root.join(p))
                .ok()
                .filter(|src| pyindex::could_use(src, &wanted))
        },
        None,
    ));
    tracing::debug!(
        files = idx.len(),
        leaves = wanted.len(),
        elapsed_ms = t.elapsed().as_millis() as u64,
        "python module index for the uses of the edited modules built"
    );
    *cache = Some((root.to_path_buf(), head.to_string(), wanted, idx.clone()));
    Ok(idx)
}

fn facts_key(state: &RandomState, root: &Path, head: &str, p: &Proposal) -> FactsKey {
    texts_key(state, root, head, &p.file_path, &p.before, &p.after)
}

fn texts_key(
    state: &RandomState,
    root: &Path,
    head: &str,
    path: &str,
    before: &str,
    after: &str,
) -> FactsKey {
    (
        root.to_path_buf(),
        head.to_string(),
        path.to_string(),
        state.hash_one((before, after)),
    )
}

fn removed_names_used_elsewhere_cached(ctx: &RunCtx, p: &Proposal) -> Result<Vec<String>, Halt> {
    if !pyindex::is_python(&p.file_path) {
        return Ok(Vec::new());
    }
    let head = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
    let root = ctx.worktree_path();
    {
        let mut cache = REMOVED.lock().unwrap_or_else(|e| e.into_inner());
        let (state, map) = cache.get_or_insert_with(Default::default);
        if let Some(found) = map.get(&facts_key(state, &root, &head, p)) {
            return Ok(found.clone());
        }
    }
    let found = removed_names_used_elsewhere(ctx, &root, &head, p)?;
    let mut cache = REMOVED.lock().unwrap_or_else(|e| e.into_inner());
    let (state, map) = cache.get_or_insert_with(Default::default);
    map.insert(facts_key(state, &root, &head, p), found.clone());
    Ok(found)
}

/// For a Python edit, in the worktree at `root` at commit `head`.
fn removed_names_used_elsewhere(
    ctx: &RunCtx,
    root: &Path,
    head: &str,
    p: &Proposal,
) -> Result<Vec<String>, Halt> {
    let removed = match raw_removed(root, head, p) {
        Some(names) => names,
        None => pyindex::removed_names_of(&p.before, &p.after),
    };
    // Only an edit that removes a name needs the other files.
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    let idx = match pyindex::module_leaf(&p.file_path) {
        Some(leaf) => uses_index(ctx, root, head, &BTreeSet::from([leaf.to_string()]))?,
        None => index(ctx)?,
    };
    Ok(pyindex::users_of_removed(
        &idx,
        &p.file_path,
        &removed,
        pyindex::all_of(&p.before).as_ref(),
    ))
}

/// Answers the cross-file gate's first question for all of `proposals` at once, on every
/// core, before they are policed one by one: an edit that removes no module-level name uses
/// nothing of another file's, and that answer goes into the cache [`edit_facts`] reads. The
/// edits that do remove one are left to [`edit_facts`] (they need the index). Edits already
/// answered (by a [`Prefetch`] the proposer started) are not parsed again.
pub fn prefetch(ctx: &RunCtx, proposals: &[Proposal]) -> Result<(), Halt> {
    let head = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
    let root = ctx.worktree_path();
    let todo: Vec<EditTexts> = {
        let mut cache = REMOVED.lock().unwrap_or_else(|e| e.into_inner());
        let (state, map) = cache.get_or_insert_with(Default::default);
        proposals
            .iter()
            .filter(|p| pyindex::is_python(&p.file_path))
            .filter(|p| !map.contains_key(&facts_key(state, &root, &head, p)))
            .filter(|p| raw_removed(&root, &head, p).is_none())
            .map(|p| (p.file_path.clone(), p.before.clone(), p.after.clone()))
            .collect()
    };
    Prefetch::start(ctx, todo)?.finish();
    // One index for the uses of every module an edit removes a name from, instead of one
    // that grows edit by edit.
    let leaves: BTreeSet<String> = proposals
        .iter()
        .filter(|p| raw_removed(&root, &head, p).is_some())
        .filter_map(|p| pyindex::module_leaf(&p.file_path).map(str::to_string))
        .collect();
    if !leaves.is_empty() {
        uses_index(ctx, &root, &head, &leaves)?;
    }
    Ok(())
}

/// An edit's path, pre-image and post-image.
pub type EditTexts = (String, String, String);
/// The module-level names an edit removes.
pub type RemovedNames = Vec<String>;

/// [`prefetch`] on a thread of its own, so a proposer can go on with its other gates (which
/// mostly wait for ruff) while the edits it has are parsed.
pub struct Prefetch {
    key: (PathBuf, String),
    work: Option<std::thread::JoinHandle<Vec<(EditTexts, RemovedNames)>>>,
}

impl Prefetch {
    /// Starts on `(path, before, after)` of each edit (non-Python ones are left out).
    pub fn start(ctx: &RunCtx, edits: Vec<EditTexts>) -> Result<Prefetch, Halt> {
        let head = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
        let key = (ctx.worktree_path(), head);
        let edits: Vec<_> = edits
            .into_iter()
            .filter(|(path, ..)| pyindex::is_python(path))
            .collect();
        if edits.is_empty() {
            return Ok(Prefetch { key, work: None });
        }
        let work = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                let t = std::time::Instant::now();
                let pairs: Vec<(&str, &str)> = edits
                    .iter()
                    .map(|(_, b, a)| (b.as_str(), a.as_str()))
                    .collect();
                let Some(removed) = pyindex::removed_names_many(&pairs) else {
                    return Vec::new();
                };
                tracing::debug!(
                    edits = pairs.len(),
                    elapsed_ms = t.elapsed().as_millis() as u64,
                    "names the edits remove, found in parallel"
                );
                drop(pairs);
                edits.into_iter().zip(removed).collect()
            })?;
        Ok(Prefetch {
            key,
            work: Some(work),
        })
    }

    /// Waits for the answers and puts the edits that remove nothing into the cache; returns
    /// every edit with the names it removes, in the order they were given. A thread that
    /// panicked answers nothing: those edits are asked one by one, as without it.
    pub fn finish(self) -> Vec<(EditTexts, RemovedNames)> {
        let Some(work) = self.work else {
            return Vec::new();
        };
        let Ok(found) = work.join() else {
            return Vec::new();
        };
        let (root, head) = self.key;
        remember_removed(&root, &head, &found);
        found
    }
}

/// Answers of the cross-file gate's first question found elsewhere (the gate memo, for an
/// edit's texts by their blob ids) for the cache [`edit_facts`] reads.
pub fn known_removed(ctx: &RunCtx, found: &[(EditTexts, RemovedNames)]) -> Result<(), Halt> {
    let head = noctune_git::head_sha(&ctx.wt).map_err(Halt::from_display)?;
    remember_removed(&ctx.worktree_path(), &head, found);
    Ok(())
}

/// Only an edit that removes nothing is answered whole: one that removes a name still needs
/// the index, to find who uses it.
fn remember_removed(root: &Path, head: &str, found: &[(EditTexts, RemovedNames)]) {
    let mut cache = REMOVED.lock().unwrap_or_else(|e| e.into_inner());
    let (state, map) = cache.get_or_insert_with(Default::default);
    let mut raw = RAW_REMOVED.lock().unwrap_or_else(|e| e.into_inner());
    let (raw_state, raw_map) = raw.get_or_insert_with(Default::default);
    for ((file_path, before, after), names) in found {
        if names.is_empty() {
            map.insert(
                texts_key(state, root, head, file_path, before, after),
                Vec::new(),
            );
        } else {
            raw_map.insert(
                texts_key(raw_state, root, head, file_path, before, after),
                names.clone(),
            );
        }
    }
}

/// An edit [`ApprovedEdit::from_verdict`] let through, judged again with this gate's facts.
/// The core recomputes the verdict from the recorded edit alone, which cannot show what other
/// files use, so an approval file whose `auto_approved` flag was set by hand would otherwise
/// let through an edit that breaks an importer.
pub fn still_auto_approved(
    ctx: &RunCtx,
    edit: Result<ApprovedEdit, DecisionError>,
) -> Result<Result<ApprovedEdit, DecisionError>, Halt> {
    let Ok(e) = edit else {
        return Ok(edit);
    };
    let in_globs = ctx.in_globs(&e.proposal().file_path);
    let facts = edit_facts(ctx, e.proposal())?;
    Ok(
        match police(&ctx.pack, in_globs, &facts, ctx.tests_available()) {
            Verdict::AutoApprove { .. } => Ok(e),
            _ => Err(DecisionError::NotAutoApproved(e.approval_id().to_string())),
        },
    )
}

/// Imports each module named on the command line with the worktree (and its `src/`) first
/// on `sys.path`, and writes what happened per module as JSON. `-I` keeps the user's site
/// directory, `PYTHON*` variables and the current directory out; a copy of the project that
/// is already imported from elsewhere (a `.pth` of an install) is dropped first, and a module
/// found outside the worktree is reported as such rather than as a pass.
const IMPORT_CHECK_PY: &str = r#"import importlib, json, os, sys, traceback
sys.dont_write_bytecode = True
out, roots, mods = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
roots = [os.path.realpath(r) for r in roots]
sys.path[:0] = roots
def inside(f):
    f = os.path.realpath(f)
    return any(f.startswith(r + os.sep) for r in roots)
tops = {m.split(".")[0] for m in mods}
for name in [n for n in sys.modules if n.split(".")[0] in tops]:
    f = getattr(sys.modules[name], "__file__", None)
    if f and not inside(f):
        del sys.modules[name]
res = {}
for name in mods:
    try:
        m = importlib.import_module(name)
    except BaseException as e:
        print(f"--- import {name} failed:", flush=True)
        traceback.print_exc()
        res[name] = {"error": f"{type(e).__name__}: {e}"}
        continue
    f = getattr(m, "__file__", None)
    res[name] = {"elsewhere": f} if f and not inside(f) else {"ok": True}
with open(out, "w") as fh:
    json.dump(res, fh)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"#;

/// How long importing the modules of one patchset may take.
const IMPORT_TIMEOUT_SECS: u64 = 120;

/// The import check of one patchset, taken on the worktree before its edits are written.
pub struct ImportCheck {
    python: String,
    modules: Vec<String>,
    base: BTreeMap<String, ImportResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ImportResult {
    Ok,
    Error(String),
    /// Found outside the worktree (so it says nothing about the edits).
    Elsewhere,
}

/// Why a patchset failed the import check: the same parts as a failed check.
pub struct ImportFailure {
    pub tool: String,
    pub what: String,
    pub tail: String,
    /// The modules that imported before the patchset and do not after it.
    pub regressions: Vec<String>,
}

const TOOL: &str = "import_check";

/// The Python of a check the pack allows, if one runs Python (`python3 -m pytest`): the
/// import check runs project code, as that check does, so it runs only with that consent and
/// with that interpreter (a project's virtualenv's, when the check names it).
fn interpreter(ctx: &RunCtx) -> Option<String> {
    ctx.pack
        .checks
        .iter()
        .filter(|c| ctx.pack.tool_allowed(c))
        .filter_map(|c| ctx.cfg.tools.get(c)?.command.first())
        .find(|program| {
            let name = std::path::Path::new(program.as_str())
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("");
            name.strip_prefix("python")
                .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
        .cloned()
}

/// Before a patchset's edits are written: which modules to import (each touched module of a
/// package, its top-level package and the modules that import it) and how they import now.
/// `None` when there is nothing to import, no allowed check runs Python (a `tool_skipped`
/// event says so), or the import at the base does not finish.
pub fn import_baseline(ctx: &mut RunCtx, files: &[String]) -> Result<Option<ImportCheck>, Halt> {
    if !files.iter().any(|f| f.ends_with(".py")) {
        return Ok(None);
    }
    // Asked before the index: without consent to run project code nothing is imported, and
    // the index of a large tree (its first build, or a rebuild after each commit) is then work
    // for nothing.
    let Some(python) = interpreter(ctx) else {
        ctx.emit(EventPayload::ToolSkipped {
            tool: TOOL.into(),
            reason: "no check the pack allows runs Python, and importing the project runs its code"
                .into(),
            stage: "check".into(),
        })?;
        return Ok(None);
    };
    let modules = index(ctx)?.import_targets(files);
    if modules.is_empty() {
        return Ok(None);
    }
    let (base, outcome) = run_imports(ctx, &python, &modules, "base")?;
    match base {
        Some(base) => Ok(Some(ImportCheck {
            python,
            modules,
            base,
        })),
        None => {
            ctx.emit(EventPayload::Log {
                level: LogLevel::Warn,
                message: format!(
                    "import check skipped: importing {} before the patchset did not finish ({})",
                    modules.join(", "),
                    outcome.describe()
                ),
                file: None,
                project: None,
            })?;
            Ok(None)
        }
    }
}

/// After the edits are written: the modules that imported at the base and fail now. A module
/// that failed already is not blamed on the patchset.
pub fn import_regressions(
    ctx: &mut RunCtx,
    check: Option<ImportCheck>,
) -> Result<Option<ImportFailure>, Halt> {
    let Some(check) = check else {
        return Ok(None);
    };
    let (after, outcome) = run_imports(ctx, &check.python, &check.modules, "after")?;
    let tail = outcome.tail().to_string();
    let imported: Vec<&String> = check
        .modules
        .iter()
        .filter(|m| check.base.get(*m) == Some(&ImportResult::Ok))
        .collect();
    let Some(after) = after else {
        if imported.is_empty() {
            return Ok(None);
        }
        return Ok(Some(ImportFailure {
            tool: TOOL.into(),
            what: format!(
                "importing {} did not finish ({}); it did before the patchset",
                join(&imported),
                outcome.describe()
            ),
            tail,
            regressions: imported.into_iter().cloned().collect(),
        }));
    };
    let broken: Vec<(&String, &String)> = imported
        .into_iter()
        .filter_map(|m| match after.get(m) {
            Some(ImportResult::Error(e)) => Some((m, e)),
            _ => None,
        })
        .collect();
    if broken.is_empty() {
        return Ok(None);
    }
    let what = broken
        .iter()
        .map(|(m, e)| {
            format!(
                "{m} no longer imports: {}",
                noctune_core::text::prefix_chars(e, 300)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Some(ImportFailure {
        tool: TOOL.into(),
        what,
        tail,
        regressions: broken.into_iter().map(|(m, _)| m.clone()).collect(),
    }))
}

fn join(modules: &[&String]) -> String {
    modules
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the import script; the results per module, or `None` when it wrote none (it timed
/// out or crashed), with how the process ended and its output.
fn run_imports(
    ctx: &mut RunCtx,
    python: &str,
    modules: &[String],
    which: &str,
) -> Result<(Option<BTreeMap<String, ImportResult>>, ToolOutcome), Halt> {
    let dir = ctx.paths.run_dir.join("tools");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("import_check.py");
    noctune_util::fsx::write_atomic_unsynced(&script, IMPORT_CHECK_PY.as_bytes())?;
    let out = dir.join(format!("import_check-{which}.json"));
    let _ = std::fs::remove_file(&out);
    let wt = ctx.worktree_path();
    let mut roots = vec![wt.display().to_string()];
    if wt.join("src").is_dir() {
        roots.push(wt.join("src").display().to_string());
    }
    let mut command = vec![
        python.to_string(),
        "-I".into(),
        "-B".into(),
        script.display().to_string(),
        out.display().to_string(),
        serde_json::to_string(&roots).map_err(Halt::from_display)?,
    ];
    command.extend(modules.iter().cloned());
    let tool = ToolDef {
        name: TOOL.into(),
        command,
        stage: ToolStage::Check,
        timeout_secs: IMPORT_TIMEOUT_SECS,
    };
    let outcome = ctx.run_tool(&tool, &[], "check")?;
    let parsed: Option<BTreeMap<String, serde_json::Value>> = std::fs::read(&out)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let results = parsed.map(|m| {
        m.into_iter()
            .map(|(name, v)| {
                let r = if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                    ImportResult::Error(e.to_string())
                } else if v.get("elsewhere").is_some() {
                    ImportResult::Elsewhere
                } else {
                    ImportResult::Ok
                };
                (name, r)
            })
            .collect()
    });
    Ok((results, outcome))
}
