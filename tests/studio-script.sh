#!/usr/bin/env bash
# The README's run command, checked as a newcomer meets it: a clone of this repository alone in an empty folder (no
# sibling folders, so nothing outside the clone can be used), `./scripts/studio.sh --no-open` on the demo
# repository with no model server configured, so it starts the bundled SmolLM2 demo model itself. Passes when the
# printed URL serves Studio, the model health check names the demo model, a chat message gets real words back and
# the turn ends, and a SIGTERM to the script stops Studio and the model server.
#
#   tests/studio-script.sh      (needs the llama kit built: scripts/llm/llama-kit.sh build smollm2; run-all.sh does)
#
# Env: NOCTUNE_BIN (the binary to use; default: build the release one as the README command does),
#      CARGO_TARGET_DIR, NOCTUNE_LLAMA_CACHE (the kit's cache, shared with the clone).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$(pwd)
fail() { echo "studio-script: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d -t noctune-fresh.XXXXXX)
out=$work/studio.out
err=$work/studio.err
pid=""
finish() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap finish EXIT

# Only what is committed: a clone, as a user gets it.
git clone -q "$src" "$work/noctune"
[ "$(ls -A "$work")" = "$(printf 'noctune\n')" ] || fail "the clone's folder has siblings: $(ls -A "$work")"

(
  cd "$work/noctune"
  unset NOCTUNE_STUDIO_LLM_BASE_URL NOCTUNE_STUDIO_LLM_MODEL
  export NOCTUNE_DEMO_REPO=$work/demo NOCTUNE_STUDIO_DB=$work/audit.sqlite
  exec ./scripts/studio.sh --no-open --port 0
) >"$out" 2>"$err" &
pid=$!

url=""
for _ in $(seq 1 900); do # the first build of the model kit is cached by run-all.sh's llm tier; allow 3 min
  url=$(sed -n 's#^Noctune Studio: \(http://127\.0\.0\.1:[0-9]*/studio?token=[0-9a-f]*\)$#\1#p' "$out" | head -1)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; fail "scripts/studio.sh exited before printing the URL"; }
  sleep 0.2
done
[ -n "$url" ] || { cat "$err" >&2; fail "no URL printed within 3 minutes"; }
origin=${url%%/studio*}
token=${url##*token=}
echo "studio-script: Studio at $origin (from a clone with no siblings)" >&2

grep -q "small demo model SmolLM2-135M-Instruct" "$err" || { cat "$err" >&2; fail "the script did not say it uses the bundled demo model"; }
page=$(curl -fsS -m 10 -L -c "$work/cookies" -b "$work/cookies" "$url") || fail "GET $url failed"
grep -qi "<title>[^<]*Noctune Studio" <<<"$page" || fail "the URL did not serve the Studio page"

api() { curl -fsS -m "${2:-10}" -H "Authorization: Bearer $token" "$origin$1"; }
health=$(api /api/chat/health) || fail "GET /api/chat/health failed"
python3 - "$health" <<'EOF' || fail "model health: $health"
import json, sys
h = json.loads(sys.argv[1])
assert h.get("ok") is True, h
assert "SmolLM2" in json.dumps(h), h
EOF

# One real turn: the answer streams as SSE (event = ChatEvent type).
sse=$(curl -fsS -m 180 -N -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"message": "Say hello in one short sentence."}' "$origin/api/chat/sessions/fresh1/messages") \
  || fail "the chat request failed"
python3 - "$sse" <<'EOF' || { echo "$sse" | tail -20 >&2; fail "the chat turn did not stream words and end"; }
import json, sys
events = [json.loads(l[5:]) for l in sys.argv[1].splitlines() if l.startswith("data:") and l[5:].strip().startswith("{")]
kinds = [e.get("type") for e in events]
text = "".join(e.get("text", "") for e in events if e.get("type") == "delta")
assert "error" not in kinds, [e for e in events if e.get("type") == "error"]
assert kinds and kinds[-1] == "done", kinds
assert len(text.split()) >= 2, repr(text)
print(f"studio-script: the demo model answered {len(text.split())} words: {text[:80]!r}", file=sys.stderr)
EOF

# SIGTERM to the script stops Studio and the model server it started.
model_port=$(sed -n 's#.*small demo model SmolLM2-135M-Instruct at http://127\.0\.0\.1:\([0-9]*\)/v1.*#\1#p' "$err" | head -1)
kill -TERM "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && fail "scripts/studio.sh still runs 10 s after SIGTERM"
pid=""
curl -fs -m 2 "$origin/api/chat/health" >/dev/null 2>&1 && fail "Studio still answers after SIGTERM"
[ -n "$model_port" ] && curl -fs -m 2 "http://127.0.0.1:$model_port/health" >/dev/null 2>&1 && fail "the demo model server still answers after SIGTERM"
echo "studio-script: ok (Studio served, the demo model answered, SIGTERM stopped both)" >&2
