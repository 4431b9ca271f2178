//! The `approvals` and `decisions` tables: `state/approvals/<id>.json` and `<id>.decision.json`.
//!
//! A decision is final. The approval id hashes the edit's pre- and post-image, so a changed
//! edit gets a new id and a new decision; deciding the same id twice is refused
//! ([`StoreError::AlreadyDecided`]), whichever process or surface tries.

use super::{AuditStore, Durability, StoreError};
use noctune_core::{ApprovalDecision, ApprovalRequest, RunId};

const UPSERT_APPROVAL: &str = "INSERT INTO approvals (run_id, approval_id, created_at, file_path,
        symbol, risk_score, reason, diff, payload_json)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    ON CONFLICT (run_id, approval_id) DO UPDATE SET created_at = excluded.created_at,
        file_path = excluded.file_path, symbol = excluded.symbol,
        risk_score = excluded.risk_score, reason = excluded.reason, diff = excluded.diff,
        payload_json = excluded.payload_json";

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
            .map(|r| self.encode("approval request", r))
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
                ])
                .map_err(self.err(what))?;
            }
            Ok(())
        })
    }

    /// A run's approval requests, ordered by file path then approval id (the order a run
    /// visits files in, so surfaces list them the same way).
    pub fn approvals(&self, run_id: &RunId) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.payloads(
            "reading approval requests",
            "SELECT approval_id, payload_json FROM approvals WHERE run_id = ?1
             ORDER BY file_path, approval_id",
            run_id,
            "approval request",
        )
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
