#!/usr/bin/env bash
# MCP end to end, both ways:
#  - an external agent on the official MCP Python SDK (`mcp` from PyPI, pinned in
#    tests/e2e/mcp/requirements.txt) drives enqueue -> tail -> approve -> done and a stopped run,
#    over stdio (`noctune mcp`) and over Streamable HTTP (`noctune studio`'s /mcp with the token);
#  - an agent on the official MCP TypeScript SDK (@modelcontextprotocol/sdk from npm, pinned in
#    tests/e2e/mcp/package.json) makes every tool fail once and checks that each error reaches it
#    as an `isError` result with our code and message (not an SDK exception), that successes
#    validate against the output schemas, and that no published schema has a non-standard
#    `format` (tests/e2e/mcp/ts_sdk_errors.mjs), over stdio and Streamable HTTP;
#  - chat uses a real third-party MCP server from npm (@modelcontextprotocol/server-filesystem,
#    pinned in tests/e2e/mcp/package-lock.json).
# Needs ruff on PATH and pytest for python3 (the lint_fix runs use them; tests/run-all.sh installs
# both).
# Installs what it needs (a venv at ~/.cache/noctune-mcp-venv, npm ci), runs the agent directly,
# then the Rust MCP tests that drive the same scripts and check commits, run.json and the audit DB.
# Safe to re-run: installs are skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
VENV=${NOCTUNE_MCP_VENV:-$HOME/.cache/noctune-mcp-venv}
E2E=$ROOT/tests/e2e/mcp

step() { printf '\n== %s\n' "$*"; }

step "MCP Python SDK venv ($VENV)"
want=$(grep -E '^mcp==' "$E2E/requirements.txt" | cut -d= -f3)
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$want')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$E2E/requirements.txt"
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'

step "MCP TypeScript SDK and a third-party MCP server from npm (npm ci in tests/e2e/mcp)"
command -v node >/dev/null || { echo "node is required for @modelcontextprotocol/sdk and server-filesystem" >&2; exit 1; }
# `npm ls` fails when any dependency in package.json is missing or at another version.
if ! (cd "$E2E" && npm ls --depth=0 >/dev/null 2>&1); then
  (cd "$E2E" && npm ci --no-audit --no-fund)
fi

# The lint_fix runs every tier drives fix with ruff and check with `python3 -m pytest`.
command -v ruff >/dev/null || { echo "ruff is required on PATH (tests/run-all.sh installs ruff==0.17.6)" >&2; exit 1; }
python3 -c 'import pytest' 2>/dev/null || { echo "pytest is required for python3 (tests/run-all.sh installs pytest==9.2.0)" >&2; exit 1; }

step "Build"
if [ -z "${NOCTUNE_BIN:-}" ]; then # tests/run-all.sh built it already
  cargo build --locked --bin noctune
fi
BIN=${NOCTUNE_BIN:-$CARGO_TARGET_DIR/debug/noctune}

WORK=$(mktemp -d)
STUDIO_PID=
cleanup() {
  [ -n "$STUDIO_PID" ] && kill "$STUDIO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export NOCTUNE_STUDIO_DB=$WORK/audit.sqlite
unset NOCTUNE_STUDIO_ALLOWED_ROOTS

fixture_repo() { # a git repository made from fixtures/pyproj
  local dir=$1
  cp -r "$ROOT/fixtures/pyproj" "$dir"
  rm -rf "$dir/.noctune_cache"
  git -C "$dir" init -q -b main
  git -C "$dir" add -A
  git -C "$dir" -c user.name=Fixture -c user.email=fixture@example.com -c core.hooksPath=/dev/null commit -q -m initial
}

# Checks that the agent's view ($1: its JSON output) agrees with run.json and the audit DB.
check() {
  local seen=$1 approve_id stop_id
  approve_id=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["approve"]["run_id"])' "$seen")
  stop_id=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stop"]["run_id"])' "$seen")
  "$BIN" status "$approve_id" --json >"$WORK/status.json"
  "$BIN" approvals "$approve_id" --json >"$WORK/approvals.json"
  "$BIN" status "$stop_id" --json >"$WORK/stop.json"
  "$VENV/bin/python" - "$seen" "$WORK/status.json" "$WORK/approvals.json" "$WORK/stop.json" <<'EOF'
import json, sys
seen, status, approvals, stop = (json.load(open(p)) for p in sys.argv[1:])
a = seen["approve"]
assert status["status"] == "done" == a["status"]["status"], (status, a["status"])
assert status["branch"] == a["branch"]
mine = [x for x in approvals if x["approval_id"] == a["approval_id"]][0]
assert mine["status"] == "approved", mine
assert mine["decision"]["decided_by"] == "mcp:python-sdk-agent" == a["decision"]["decided_by"], mine
assert stop["status"] == "stopped" == seen["stop"]["status"]["status"], stop
print(f"  agrees: run {a['run_id']} done on {a['branch']} ({len(a['committed'])} commits, "
      f"{a['events']} events), approved by {mine['decision']['decided_by']}; run {seen['stop']['run_id']} stopped")
EOF
  local branch commits
  branch=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["branch"])' "$WORK/status.json")
  commits=$(git -C "$2" rev-list --count "main..$branch")
  [ "$commits" -ge 1 ] || { echo "no commits on $branch" >&2; exit 1; }
}

step "External agent (Python SDK) over stdio"
fixture_repo "$WORK/repo-stdio"
"$VENV/bin/python" "$E2E/agent_flow.py" --stdio "$BIN" --repo "$WORK/repo-stdio" >"$WORK/stdio.json"
check "$WORK/stdio.json" "$WORK/repo-stdio"

step "External agent (Python SDK) over Streamable HTTP (noctune studio /mcp)"
fixture_repo "$WORK/repo-http"
"$BIN" studio --repo "$WORK/repo-http" --port 0 --no-open >"$WORK/studio.out" 2>"$WORK/studio.err" &
STUDIO_PID=$!
for _ in $(seq 1 100); do
  grep -q '^Noctune Studio: ' "$WORK/studio.out" && break
  sleep 0.1
done
url=$(sed -n 's/^Noctune Studio: //p' "$WORK/studio.out")
[ -n "$url" ] || { echo "noctune studio printed no URL:"; cat "$WORK/studio.err"; exit 1; } >&2
base=${url%%/studio?token=*}
token=${url##*token=}
"$VENV/bin/python" "$E2E/agent_flow.py" --url "$base/mcp" --token "$token" --repo "$WORK/repo-http" >"$WORK/http.json"
check "$WORK/http.json" "$WORK/repo-http"
kill "$STUDIO_PID"
STUDIO_PID=

step "Tool errors as the TypeScript SDK sees them, over stdio and Streamable HTTP (ts_sdk_errors.mjs)"
# Exits non-zero (and so does this script, set -e) when any check failed.
NOCTUNE_STUDIO_DB=$WORK/ts-audit.sqlite node "$E2E/ts_sdk_errors.mjs" --bin "$BIN"

if [ -z "${NOCTUNE_FROM_RUN_ALL:-}" ]; then # run-all.sh runs these itself, once
  step "Rust MCP tests (contract, agents, HTTP lock, client with the npm server)"
  unset NOCTUNE_STUDIO_DB
  NOCTUNE_MCP_VENV=$VENV cargo test --locked --test it mcp_ -- --include-ignored --test-threads="${NOCTUNE_TEST_THREADS:-2}"
fi
