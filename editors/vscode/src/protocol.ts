// The noctune/* extension of the protocol, mirrored from docs/lsp-protocol.md (the one
// description) and server/lsp/protocol.rs. test/protocol.test.mjs checks this file against the
// real server; test/wire.test.mjs checks the records (RunRecord, ApprovalItem, ApprovalDecision,
// RunEvent) against schema/wire.json, the schema generated from the server's Rust types. No
// `vscode` import here: plain data and types.

export const Methods = {
  chat: "noctune/chat",
  chatCancel: "noctune/chatCancel",
  runsStart: "noctune/runs/start",
  runsList: "noctune/runs/list",
  runsStop: "noctune/runs/stop",
  approvals: "noctune/approvals",
  packs: "noctune/packs",
  studioUrl: "noctune/studioUrl",
} as const;

export const Notifications = {
  chatDelta: "noctune/chatDelta",
} as const;

export const Commands = {
  approve: "noctune.approve",
  reject: "noctune.reject",
  showDiff: "noctune.showDiff",
} as const;

/** Titles of the permission prompt's buttons (window/showMessageRequest), in order. */
export const PermissionButtons = ["Allow once", "Allow this session", "Always allow", "Deny"] as const;

/** Titles of the code actions on an approval diagnostic. */
export const ActionTitles = ["Approve", "Reject", "Show diff"] as const;

/** The `source` of approval diagnostics. */
export const DiagnosticSource = "noctune";

export const ProtocolVersion = 1;

export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}

export interface ChatParams {
  message: string;
  session?: string;
  requestId?: string | number;
  profile?: string;
  context?: { uri?: string; selection?: Range; text?: string };
}

export interface ChatResult {
  session: string;
  requestId: string;
  text: string;
  finish_reason: string | null;
  rounds: number;
  tool_calls: number;
  tool_mode: "native" | "prompt";
  usage: unknown;
  timings: unknown;
  error: string | null;
}

export type ChatDeltaKind =
  | "delta"
  | "reasoning"
  | "tool_call"
  | "tool_result"
  | "permission_request"
  | "notice"
  | "done"
  | "error";

export const ChatDeltaKinds: readonly ChatDeltaKind[] = [
  "delta",
  "reasoning",
  "tool_call",
  "tool_result",
  "permission_request",
  "notice",
  "done",
  "error",
];

export interface ChatDelta {
  session: string;
  requestId: string;
  seq: number;
  kind: ChatDeltaKind;
  text?: string;
  message?: string;
  id?: string;
  name?: string;
  arguments?: unknown;
  ok?: boolean;
  result?: unknown;
  summary?: string;
  finish_reason?: string;
}

export interface ChatCancelParams {
  requestId?: string | number;
  session?: string;
}
export interface ChatCancelResult {
  cancelled: number;
}

/** A run's state/run.json (wire.json: RunRecord). */
export interface RunRecord {
  run_id: string;
  status: "queued" | "running" | "waiting_approval" | "stopping" | "done" | "failed" | "stopped";
  pack: string;
  profile: string;
  branch: string;
  repo_root: string;
  head_sha: string;
  started_at: string;
  updated_at: string;
  ended_at: string | null;
  error: string | null;
  resume_policy: "continue" | "never";
  worker_pid: number | null;
  stage: string;
  /** Commits on the run's branch, once it ended. */
  commits?: number | null;
  /** Why a done run committed nothing. */
  reason?: string | null;
}

/** The `type` of every run event, in the order a run can emit them (wire.json: Event). */
export const RunEventTypes = [
  "run_queued",
  "uncommitted_changes",
  "run_started",
  "status_changed",
  "stage",
  "heartbeat",
  "worktree_ready",
  "tool_started",
  "tool_finished",
  "tool_skipped",
  "edit_proposed",
  "edit_repaired",
  "edit_dropped",
  "policy_violation",
  "edit_refused",
  "auto_approved",
  "approval_requested",
  "approval_decided",
  "approval_stale",
  "approval_tampered",
  "patchset_planned",
  "check_baseline",
  "patchset_applied",
  "patchset_failed",
  "patchset_committed",
  "stop_requested",
  "stopped",
  "run_failed",
  "run_done",
  "run_resumed",
  "log",
] as const;

/**
 * One line of a run's events.jsonl, as the web API and SSE send it (wire.json: Event). `type` is
 * one of RunEventTypes from this version; a client skips a type it does not know.
 */
export interface RunEvent {
  idx: number;
  ts: string;
  type: string;
  payload: unknown;
}

export interface RunsStartParams {
  pack: string;
  profile?: string;
  /** Another repository (absolute path) inside the workspace repository's allowed roots. */
  repo?: string;
  workDoneToken?: string | number;
}
export interface RunsStopParams {
  run_id: string;
  grace_secs?: number;
}
export interface RunsListResult {
  runs: RunRecord[];
}

export interface PacksResult {
  packs: string[];
  profiles: string[];
  default_profile: string;
}

/** A recorded decision (wire.json: ApprovalDecision). */
export interface ApprovalDecision {
  approval_id: string;
  decision: "approve" | "reject";
  decided_at: string;
  decided_by: string;
  reason: string;
  /** The file and the SHA-256 of its pre- and post-image the decision was made for. */
  file_path?: string | null;
  before_sha256?: string | null;
  after_sha256?: string | null;
}

/**
 * An approval as the language server sends it: wire.json's ApprovalView plus where it is in the
 * workspace (run_id, pack, uri, line).
 */
export interface ApprovalItem {
  run_id: string;
  pack: string;
  approval_id: string;
  file_path: string;
  uri: string;
  line: number;
  symbol: string;
  risk_score: number;
  reason: string;
  diff: string;
  status: "pending" | "approved" | "rejected" | "auto_approved" | "tampered";
  created_at: string;
  lines_changed: number;
  decision: ApprovalDecision | null;
}
export interface ApprovalsParams {
  run_id?: string;
  all?: boolean;
}
export interface ApprovalsResult {
  approvals: ApprovalItem[];
}

export interface DecideArgs {
  run_id: string;
  approval_id: string;
  reason?: string;
}

export interface StudioUrlParams {
  open?: boolean;
}
export interface StudioUrlResult {
  url: string | null;
  enabled: boolean;
  opened?: boolean;
  error?: string;
}

/** Keys every result of a request has (checked against the server by the protocol test). */
export const ResultKeys: Record<string, readonly string[]> = {
  [Methods.chat]: ["session", "requestId", "text", "finish_reason", "rounds", "tool_calls", "tool_mode", "error"],
  [Methods.chatCancel]: ["cancelled"],
  [Methods.runsStart]: ["run_id", "status", "pack", "profile", "branch", "repo_root", "started_at", "stage"],
  [Methods.runsList]: ["runs"],
  [Methods.runsStop]: ["run_id", "status"],
  [Methods.approvals]: ["approvals"],
  [Methods.packs]: ["packs", "profiles", "default_profile"],
  [Methods.studioUrl]: ["url", "enabled"],
};

/** Keys of every chatDelta notification. */
export const DeltaKeys = ["session", "requestId", "seq", "kind"] as const;
