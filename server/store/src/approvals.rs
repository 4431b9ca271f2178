//! The `approvals` and `decisions` tables: `state/approvals/<id>.json` and `<id>.decision.json`.
//!
//! An approval row is compact: the diff is in `diff`, the blob ids of the pre- and post-image
//! in `before_blob`/`after_blob` (the texts are in the repository's object store), and
//! `payload_json` holds only the fields without a column ([`COLUMN_FIELDS`] are put back from
//! the columns when a row is read). Rows of older versions hold the whole request, texts
//! included, in `payload_json`, and read as they always did.
//!
//! A decision is final. The approval id hashes the edit's pre- and post-image, so a changed
//! edit gets a new id and a new decision; deciding the same id twice is refused
//! ([`StoreError::AlreadyDecided`]), whichever process or surface tries.

use super::{AuditStore, Durability, StoreError};
use noctune_core::{ApprovalDecision, ApprovalRequest, RunId};
use serde_json::{Map, Value};

const UPSERT_APPROVAL: &str = "INSERT INTO approvals (run_id, approval_id, created_at, file_path,
        symbol, risk_score, reason, diff, payload_json, before_blob, after_blob)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
    ON CONFLICT (run_id, approval_id) DO UPDATE SET created_at = excluded.created_at,
        file_path = excluded.file_path, symbol = excluded.symbol,
        risk_score = excluded.risk_score, reason = excluded.reason, diff = excluded.diff,
        payload_json = excluded.payload_json, before_blob = excluded.before_blob,
        after_blob = excluded.after_blob";

/// Request fields stored in a column of their own, in `SELECT` order after `payload_json`:
/// left out of `payload_json` so nothing (above all the diff) is stored twice.
const COLUMN_FIELDS: [&str; 8] = [
    "approval_id",
    "run_id",
    "created_at",
    "file_path",
    "symbol",
    "risk_score",
    "reason",
    "diff",
];

const SELECT_APPROVALS: &str = "SELECT payload_json, approval_id, run_id, created_at, file_path,
        symbol, risk_score, reason, diff, before_blob, after_blob
    FROM approvals WHERE run_id = ?1 ORDER BY file_path, approval_id";

/// A request's `payload_json`: its JSON without [`COLUMN_FIELDS`] and the blob ids.
fn row_payload(req: &ApprovalRequest) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(req)?;
    if let Some(obj) = v.as_object_mut() {
        for k in COLUMN_FIELDS {
            obj.remove(k);
        }
        if let Some(edit) = obj.get_mut("edit").and_then(Value::as_object_mut) {
            edit.remove("before_blob");
            edit.remove("after_blob");
        }
    }
    serde_json::to_string(&v)
}

/// The request's JSON from a row: `payload_json` with the columns put back (a row of an older
/// version has them in its payload already, and keeps those).
fn row_request(
    payload: &str,
    columns: Map<String, Value>,
    blobs: [Option<String>; 2],
) -> serde_json::Result<Value> {
    let mut v: Value = serde_json::from_str(payload)?;
    if let Some(obj) = v.as_object_mut() {
        for (k, value) in columns {
            obj.entry(k).or_insert(value);
        }
        if let Some(edit) = obj.get_mut("edit").and_then(Value::as_object_mut) {
            let [before, after] = blobs;
            for (k, id) in [("before_blob", before), ("after_blob", after)] {
                if let Some(id) = id {
                    edit.entry(k).or_insert(Value::String(id));
                }
            }
        }
    }
    Ok(v)
}

const INSERT_DECISION: &str = "INSERT INTO decisions (run_id, approval_id, decision, decided_at,
        decided_by, reason, payload_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

impl AuditStore {
    /// Records an approval request (again, if the worker re-sends it: same id, same edit).
    /// `synchronous=NORMAL`: the request is re-ingested from its file, and the decision that
    /// follows it is durable and syncs the WAL up to and including this row.
    pub fn upsert_approval(&self, req: &ApprovalRequest) -> Result<(), StoreError> {
        self.upsert_approvals(std::slice::from_ref(req))
    }

    /// Records many approval requests in one transaction (a run proposes them in batches).
    pub fn upsert_approvals(&self, reqs: &[ApprovalRequest]) -> Result<(), StoreError> {
        let what = "recording an approval request";
        if reqs.is_empty() {
            return Ok(());
        }
        let payloads = reqs
            .iter()
            .map(|r| {
                row_payload(r).map_err(|e| StoreError::InvalidInput {
                    path: self.path.clone(),
                    detail: format!("approval request cannot be encoded as JSON: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write(Durability::Normal, what, |tx| {
            let mut checked_run: Option<&str> = None;
            let mut stmt = tx.prepare_cached(UPSERT_APPROVAL).map_err(self.err(what))?;
            for (req, payload) in reqs.iter().zip(&payloads) {
                if checked_run != Some(req.run_id.as_str()) {
                    self.require_run(tx, req.run_id.as_str(), what)?;
                    checked_run = Some(req.run_id.as_str());
                }
                stmt.execute(rusqlite::params![
                    req.run_id.as_str(),
                    req.approval_id.as_str(),
                    req.created_at,
                    req.file_path,
                    req.symbol,
                    req.risk_score,
                    req.reason,
                    req.diff,
                    payload,
                    req.content.blob_ids().map(|b| b.0),
                    req.content.blob_ids().map(|b| b.1),
                ])
                .map_err(self.err(what))?;
            }
            Ok(())
        })
    }

    /// A run's approval requests, ordered by file path then approval id (the order a run
    /// visits files in, so surfaces list them the same way).
    pub fn approvals(&self, run_id: &RunId) -> Result<Vec<ApprovalRequest>, StoreError> {
        let what = "reading approval requests";
        let mut stmt = self
            .conn
            .prepare_cached(SELECT_APPROVALS)
            .map_err(self.err(what))?;
        let mut rows = stmt.query([run_id.as_str()]).map_err(self.err(what))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(self.err(what))? {
            let payload: String = row.get(0).map_err(self.err(what))?;
            let mut columns = Map::new();
            for (i, k) in COLUMN_FIELDS.iter().enumerate() {
                let value = match row.get_ref(i + 1).map_err(self.err(what))? {
                    rusqlite::types::ValueRef::Integer(n) => Value::from(n),
                    other => Value::String(
                        other
                            .as_str()
                            .map_err(|e| self.err(what)(e.into()))?
                            .to_string(),
                    ),
                };
                columns.insert(k.to_string(), value);
            }
            let blobs = [
                row.get::<_, Option<String>>(9).map_err(self.err(what))?,
                row.get::<_, Option<String>>(10).map_err(self.err(what))?,
            ];
            let name = columns["approval_id"].as_str().unwrap_or("").to_string();
            let row_name = format!("approval request {name} of run {run_id}");
            let json = row_request(&payload, columns, blobs).map_err(|e| StoreError::BadRow {
                path: self.path.clone(),
                what: row_name.clone(),
                detail: e.to_string(),
            })?;
            out.push(
                serde_json::from_value(json).map_err(|e| StoreError::BadRow {
                    path: self.path.clone(),
                    what: row_name,
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Records a human's decision. Durable: it is what allows an edit to be committed.
    ///
    /// Fails with [`StoreError::AlreadyDecided`] if the approval already has a decision (even
    /// an identical one), and with [`StoreError::UnknownApproval`] if the request was never
    /// recorded, since a decision must be rebuildable together with the edit it decides.
    pub fn record_decision(&self, run_id: &RunId, d: &ApprovalDecision) -> Result<(), StoreError> {
        let what = "recording a decision";
        let payload = self.encode("decision", d)?;
        self.write(Durability::Full, what, |tx| {
            self.require_run(tx, run_id.as_str(), what)?;
            let known: bool = tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM approvals WHERE run_id = ?1 AND approval_id = ?2)",
                )
                .and_then(|mut s| {
                    s.query_row([run_id.as_str(), d.approval_id.as_str()], |r| r.get(0))
                })
                .map_err(self.err(what))?;
            if !known {
                return Err(StoreError::UnknownApproval {
                    path: self.path.clone(),
                    run_id: run_id.to_string(),
                    approval_id: d.approval_id.to_string(),
                });
            }
            let existing: Option<(String, String, String)> = {
                let mut s = tx
                    .prepare_cached(
                        "SELECT decision, decided_by, decided_at FROM decisions
                         WHERE run_id = ?1 AND approval_id = ?2",
                    )
                    .map_err(self.err(what))?;
                let mut rows = s
                    .query([run_id.as_str(), d.approval_id.as_str()])
                    .map_err(self.err(what))?;
                match rows.next().map_err(self.err(what))? {
                    None => None,
                    Some(r) => Some((
                        r.get(0).map_err(self.err(what))?,
                        r.get(1).map_err(self.err(what))?,
                        r.get(2).map_err(self.err(what))?,
                    )),
                }
            };
            if let Some((existing, decided_by, decided_at)) = existing {
                return Err(StoreError::AlreadyDecided {
                    run_id: run_id.to_string(),
                    approval_id: d.approval_id.to_string(),
                    existing,
                    decided_by,
                    decided_at,
                });
            }
            tx.prepare_cached(INSERT_DECISION)
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        run_id.as_str(),
                        d.approval_id.as_str(),
                        d.decision.as_str(),
                        d.decided_at,
                        d.decided_by,
                        d.reason,
                        payload,
                    ])
                })
                .map_err(self.err(what))?;
            Ok(())
        })
    }

    /// A run's decisions in the order they were made (then by approval id).
    pub fn decisions(&self, run_id: &RunId) -> Result<Vec<ApprovalDecision>, StoreError> {
        self.payloads(
            "reading decisions",
            "SELECT approval_id, payload_json FROM decisions WHERE run_id = ?1
             ORDER BY decided_at, approval_id",
            run_id,
            "decision",
        )
    }

    /// Runs `sql` (columns: a row name, a `payload_json`) for one run and decodes each row.
    fn payloads<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &str,
        run_id: &RunId,
        row_kind: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err(what))?;
        let mut rows = stmt.query([run_id.as_str()]).map_err(self.err(what))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(self.err(what))? {
            let name: String = row.get(0).map_err(self.err(what))?;
            let json: String = row.get(1).map_err(self.err(what))?;
            out.push(self.decode(format!("{row_kind} {name} of run {run_id}"), &json)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noctune_core::{
        Proposal, ProposalSource, RecordedEdit, ResumePolicy, RunRecord, RunStatus, StoredEdit,
        approval_id, unified_diff,
    };

    fn run(id: &RunId) -> RunRecord {
        RunRecord {
            run_id: id.clone(),
            status: RunStatus::Running,
            started_at: "2026-11-25T10:10:10.000Z".into(),
            updated_at: "2026-11-25T10:10:10.000Z".into(),
            ended_at: None,
            repo_root: "/repo".into(),
            pack: "lint_fix".into(),
            profile: "default".into(),
            branch: format!("noctune/lint_fix/{id}"),
            head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            error: None,
            resume_policy: ResumePolicy::Continue,
            worker_pid: None,
            worker_start_time: None,
            stage: "propose".into(),
            commits: None,
            reason: None,
            summary: None,
        }
    }

    /// A lint fix in a 3,000-line file, as a request of this version (`stored`) or of an
    /// older one (whole texts).
    fn request(run_id: &RunId, stored: bool) -> ApprovalRequest {
        let before: String = (0..3000)
            .map(|i| format!("def f{i}(x):\n    return x+{i}\n\n"))
            .collect();
        // Eight spots a formatter rewrites, as in a typical lint fix (a ~1.4 KB diff).
        let mut after = before.clone();
        for i in (100..3000).step_by(370) {
            after = after.replace(&format!("return x+{i}\n"), &format!("return x + {i}\n"));
        }
        let p = Proposal {
            file_path: "pkg/big.py".into(),
            symbol: String::new(),
            before,
            after,
            source: ProposalSource::Command,
            major_bump: false,
        };
        let content = if stored {
            RecordedEdit::Stored(StoredEdit {
                before_blob: "1111111111111111111111111111111111111111".into(),
                after_blob: "2222222222222222222222222222222222222222".into(),
                source: p.source,
                major_bump: false,
            })
        } else {
            RecordedEdit::Whole(p.clone())
        };
        ApprovalRequest {
            approval_id: approval_id("lint_fix", &p),
            run_id: run_id.clone(),
            pack: "lint_fix".into(),
            created_at: "2026-11-25T10:12:00.000Z".into(),
            file_path: p.file_path.clone(),
            symbol: String::new(),
            risk_score: 42,
            reason: "risk 42 > max_risk 30".into(),
            diff: unified_diff(&p.file_path, &p.before, &p.after),
            lines_changed: 2,
            auto_approved: false,
            content,
        }
    }

    fn row_bytes(store: &AuditStore, run_id: &RunId) -> (i64, i64) {
        store
            .conn
            .query_row(
                "SELECT length(CAST(payload_json AS BLOB)), length(CAST(diff AS BLOB))
                     + length(CAST(approval_id AS BLOB)) + length(CAST(run_id AS BLOB))
                     + length(CAST(created_at AS BLOB)) + length(CAST(file_path AS BLOB))
                     + length(CAST(symbol AS BLOB)) + length(CAST(reason AS BLOB))
                     + ifnull(length(before_blob), 0) + ifnull(length(after_blob), 0) + 8
                 FROM approvals WHERE run_id = ?1",
                [run_id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn a_stored_request_round_trips_with_its_diff_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&dir.path().join("a.sqlite")).unwrap();
        let id = RunId::parse("20261125T101010Z-00000001").unwrap();
        store.upsert_run(&run(&id)).unwrap();
        let req = request(&id, true);
        store.upsert_approval(&req).unwrap();
        assert_eq!(store.approvals(&id).unwrap(), vec![req.clone()]);
        let (payload, columns) = row_bytes(&store, &id);
        let diff = req.diff.len() as i64;
        assert!(
            payload + columns <= 2 * diff,
            "{payload} + {columns} > 2 x {diff}"
        );
        let json: String = store
            .conn
            .query_row("SELECT payload_json FROM approvals", [], |r| r.get(0))
            .unwrap();
        assert!(!json.contains("@@") && !json.contains("1111"), "{json}");

        // The old form of the same edit: the whole file, twice, in the payload.
        let old = request(&id, false);
        let id2 = RunId::parse("20261125T101010Z-00000002").unwrap();
        store.upsert_run(&run(&id2)).unwrap();
        let mut old2 = old.clone();
        old2.run_id = id2.clone();
        store.upsert_approval(&old2).unwrap();
        assert!(
            store.approvals(&id2).unwrap() == vec![old2],
            "old row differs"
        );
        let (old_payload, _) = row_bytes(&store, &id2);
        assert!(old_payload > 100 * diff, "{old_payload}");
    }

    #[test]
    fn a_version_1_db_with_whole_text_rows_migrates_and_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let id = RunId::parse("20261125T101010Z-00000003").unwrap();
        let old = request(&id, false);
        {
            // What version 1 wrote: its schema, and the whole request as the payload.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(super::super::MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO runs (run_id, repo_root, pack, profile, status, started_at,
                     updated_at, head_sha, branch, payload_json)
                 VALUES (?1, '/repo', 'lint_fix', 'default', 'waiting_approval', 't', 't',
                     'h', 'b', ?2)",
                rusqlite::params![id.as_str(), serde_json::to_string(&run(&id)).unwrap()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO approvals (run_id, approval_id, created_at, file_path, symbol,
                     risk_score, reason, diff, payload_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    id.as_str(),
                    old.approval_id.as_str(),
                    old.created_at,
                    old.file_path,
                    old.symbol,
                    old.risk_score,
                    old.reason,
                    old.diff,
                    serde_json::to_string(&old).unwrap()
                ],
            )
            .unwrap();
        }
        let store = AuditStore::open(&path).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::MIGRATIONS.len() as i64);
        assert!(
            store.approvals(&id).unwrap() == vec![old.clone()],
            "old row differs"
        );
        // New rows go in beside the old ones.
        let mut new = request(&id, true);
        new.file_path = "pkg/zz.py".into();
        new.approval_id = noctune_core::ApprovalId::parse("0123456789abcdef01234567").unwrap();
        store.upsert_approval(&new).unwrap();
        let read = store.approvals(&id).unwrap();
        // (Compared without Debug output: the whole-text request is 100 KB.)
        assert!(read == vec![old, new], "rows read back differ");
    }
}
