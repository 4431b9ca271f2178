#!/usr/bin/env bash
# The real-server test tier: builds (once, cached) llama.cpp's llama-server and a tiny random-weight model with
# scripts/llm/llama-kit.sh, starts it on a free port, runs the #[ignore]d tests of tests/it/llm_real.rs
# against it (`cargo test --test it -- --ignored llm_real::`, with NOCTUNE_LLAMA_URL set), and stops it again.
# It fails when that filter matches no test, so the tier cannot pass by running nothing.
#
#   tests/llm-real.sh            build if needed (~15 min the first time on 2 cores), then test
#   tests/llm-real.sh --no-build skip the tier (exit 0) when the kit is not built yet
#
# Env: NOCTUNE_LLAMA_KIT (default: scripts/llm/llama-kit.sh),
#      NOCTUNE_LLAMA_CACHE (the kit's cache), CARGO_TARGET_DIR (as usual).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=tests/ignored.sh
source tests/ignored.sh # run_ignored (we are at the repository root)

KIT=${NOCTUNE_LLAMA_KIT:-scripts/llm/llama-kit.sh}
[ -x "$KIT" ] || { echo "llm-real: no llama-server kit at $KIT (set NOCTUNE_LLAMA_KIT)" >&2; exit 2; }

if ! paths=$("$KIT" paths tiny 2>/dev/null); then
  if [ "${1:-}" = "--no-build" ]; then
    echo "llm-real: skipped (the llama-server kit is not built; run $KIT build tiny)"
    exit 0
  fi
  echo "llm-real: building llama-server and the tiny model (once; cached)..." >&2
  paths=$("$KIT" build tiny)
fi
server=$(sed -n 's/^server=//p' <<<"$paths")
model=$(sed -n 's/^model=//p' <<<"$paths")
template=$(sed -n 's/^template=//p' <<<"$paths")

# A free port (the kernel picks one; a small race with other programs is acceptable here).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp -t llm-real-server.XXXXXX.log)

# Started here (rather than with `kit start`) so this script owns the process and can stop it. The flags are the
# kit's own: --jinja with the Qwen2.5 template, a 4096-token context, 2 slots.
"$server" -m "$model" --host 127.0.0.1 --port "$port" --jinja --chat-template-file "$template" -c 4096 -np 2 \
  >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 150); do
  if curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "llm-real: llama-server exited:" >&2; tail -20 "$log" >&2; exit 1; fi
  sleep 0.2
done
curl -fs "http://127.0.0.1:$port/health" >/dev/null || { echo "llm-real: llama-server did not become healthy:" >&2; tail -20 "$log" >&2; exit 1; }

export NOCTUNE_LLAMA_URL="http://127.0.0.1:$port/v1"
echo "llm-real: llama-server at $NOCTUNE_LLAMA_URL (pid $pid)" >&2
run_ignored llm_real:: -- --test-threads=1 --nocapture
