#!/usr/bin/env bash
# The real-server test tier: builds (once, cached) llama.cpp's llama-server and its two models with
# scripts/llm/llama-kit.sh, starts two servers on free ports and runs the #[ignore]d tests of
# tests/it/llm_real.rs against them (`cargo test --test it -- --ignored llm_real::...`), then stops them:
#   - the tiny random-weight model with Qwen2.5's template (native tools), NOCTUNE_LLAMA_URL:
#     the `llm_real::real_server_` tests;
#   - SmolLM2-135M-Instruct, a real trained model, with its own chat template (no tool support),
#     NOCTUNE_LLAMA_SMOL_URL: the `llm_real::smollm2_` tests.
# Each filter must match at least one test (run_ignored fails otherwise), so the tier cannot pass by
# running nothing, and a test without its server fails (it never skips).
#
#   tests/llm-real.sh            build if needed (~15 min the first time on 2 cores), then test
#   tests/llm-real.sh --no-build skip the tier (exit 0) when the kit is not built yet; refused in CI
#                                (CI or NOCTUNE_FROM_RUN_ALL set): there a missing server is a failure
#
# Env: NOCTUNE_LLAMA_KIT (default: scripts/llm/llama-kit.sh),
#      NOCTUNE_LLAMA_CACHE (the kit's cache), CARGO_TARGET_DIR (as usual).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=tests/ignored.sh
source tests/ignored.sh # run_ignored (we are at the repository root)

KIT=${NOCTUNE_LLAMA_KIT:-scripts/llm/llama-kit.sh}
[ -x "$KIT" ] || { echo "llm-real: no llama-server kit at $KIT (set NOCTUNE_LLAMA_KIT)" >&2; exit 2; }

in_ci() { [ -n "${CI:-}" ] || [ -n "${NOCTUNE_FROM_RUN_ALL:-}" ]; }

# ensure_built MODEL: builds what the kit lacks for MODEL (or, with --no-build, skips the tier outside CI
# and fails in it). Not run in a $(...) subshell, so its exit ends the script.
ensure_built() {
  local model=$1
  "$KIT" paths "$model" >/dev/null 2>&1 && return 0
  if [ "$NO_BUILD" = 1 ]; then
    if in_ci; then
      echo "llm-real: --no-build in CI, but the $model kit is not built: failing (a missing server is no skip)" >&2
      exit 1
    fi
    echo "llm-real: skipped (the llama-server kit is not built for $model; run $KIT build $model)"
    exit 0
  fi
  echo "llm-real: building llama-server and the $model model (once; cached)..." >&2
  "$KIT" build "$model" >/dev/null || { echo "llm-real: building the $model kit failed" >&2; exit 1; }
}

NO_BUILD=0
[ "${1:-}" = "--no-build" ] && NO_BUILD=1
ensure_built tiny
ensure_built smollm2
tiny_paths=$("$KIT" paths tiny)
smol_paths=$("$KIT" paths smollm2)
field() { sed -n "s/^$1=//p" <<<"$2"; }
server=$(field server "$tiny_paths")

# A free port (the kernel picks one; a small race with other programs is acceptable here).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

pids=()
logs=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "${logs[@]}"
}
trap cleanup EXIT

# start NAME PORT ARGS...: starts llama-server (this script owns the process and stops it) and waits
# until /health answers.
start() {
  local name=$1 port=$2 log pid
  shift 2
  log=$(mktemp -t "llm-real-$name.XXXXXX.log")
  logs+=("$log")
  "$server" --host 127.0.0.1 --port "$port" "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      echo "llm-real: $name llama-server at http://127.0.0.1:$port/v1 (pid $pid)" >&2
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "llm-real: $name llama-server exited:" >&2; tail -20 "$log" >&2; exit 1; fi
    sleep 0.2
  done
  echo "llm-real: $name llama-server did not become healthy:" >&2
  tail -20 "$log" >&2
  exit 1
}

# The kit's flags (`llama-kit.sh serve`): --jinja, a 4096-token context, 2 slots (2048 tokens each).
# The tiny model gets Qwen2.5's template (native tools); SmolLM2 the one inside its GGUF (none).
tiny_port=$(free_port)
start tiny "$tiny_port" -m "$(field model "$tiny_paths")" --jinja \
  --chat-template-file "$(field template "$tiny_paths")" -c 4096 -np 2
smol_port=$(free_port)
start smollm2 "$smol_port" -m "$(field model "$smol_paths")" --jinja -c 4096 -np 2

export NOCTUNE_LLAMA_URL="http://127.0.0.1:$tiny_port/v1"
export NOCTUNE_LLAMA_SMOL_URL="http://127.0.0.1:$smol_port/v1"
# Two filters, two runs: each must match a test of its own.
run_ignored llm_real::real_server_ -- --test-threads=1 --nocapture
run_ignored llm_real::smollm2_ -- --test-threads=1 --nocapture
