#!/usr/bin/env bash
# Installs what the tests need on a bare machine (Debian + rustup toolchain), then runs ALL tests.
# Safe to re-run: every step is skipped when already done. CI runs exactly this (`.ci/run`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a target directory outside the clone, so a fresh clone does not rebuild everything.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

# run_ignored FILTER... [-- LIBTEST-ARGS...]: runs the #[ignore = "needs …"] tests of tests/it whose names match
# a filter (call it once what they need is installed), and fails if they fail or if no test matched (a renamed
# test must not turn a tier into a no-op). The same function is in tests/llm-real.sh.
run_ignored() {
  local filters=() log ran rc=0
  while [ $# -gt 0 ] && [ "$1" != -- ]; do filters+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  log=$(mktemp -t noctune-ignored.XXXXXX.log)
  cargo test --locked --test it -- --ignored "$@" "${filters[@]}" 2>&1 | tee "$log" || rc=$?
  ran=$(sed -n 's/^running \([0-9][0-9]*\) tests\{0,1\}$/\1/p' "$log" | awk '{n += $1} END {print n + 0}')
  rm -f "$log"
  [ "$rc" -eq 0 ] || { echo "ignored tests matching ${filters[*]}: cargo test failed (exit $rc)" >&2; return "$rc"; }
  if [ "$ran" -eq 0 ]; then
    echo "ignored tests matching ${filters[*]}: no test ran; the filter matches no #[ignore]d test in tests/it" >&2
    return 1
  fi
  echo "ignored tests matching ${filters[*]}: $ran ran and passed"
}

step "Python tools the runs use (ruff, pytest, mypy)"
need_pip=()
python3 -c 'import importlib.metadata as m; assert m.version("ruff") == "0.17.6"' 2>/dev/null || need_pip+=(ruff==0.17.6)
python3 -c 'import pytest' 2>/dev/null || need_pip+=(pytest==9.2.0)
python3 -c 'import mypy' 2>/dev/null || need_pip+=(mypy==2.4.1)
if [ ${#need_pip[@]} -gt 0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi
command -v ruff >/dev/null || { echo "ruff is not on PATH after pip install; add pip's bin folder to PATH" >&2; exit 1; }
need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v cmake >/dev/null || need_apt+=(cmake)      # builds the real llama-server once (tests/llm-real.sh)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

step "Build (target dir: $CARGO_TARGET_DIR): every test and bench target, once"
# One build for everything below: the tiers use this binary (NOCTUNE_BIN) instead of building
# their own, whose features could unify differently and rebuild the whole tree a second time.
cargo test --workspace --all-targets --locked --no-run
export NOCTUNE_BIN=$CARGO_TARGET_DIR/debug/noctune
export NOCTUNE_FROM_RUN_ALL=1

step "Rust tests (unit + integration: tests/it; the #[ignore = \"needs …\"] ones run below, once what they need is there)"
cargo test --workspace --locked -- --test-threads="${NOCTUNE_TEST_THREADS:-2}"

step "Real llama-server tier (llama.cpp's own server with a tiny random model; built once, cached)"
./tests/llm-real.sh # runs the ignored tests/it/llm_real.rs with NOCTUNE_LLAMA_URL set

step "Editor clients: VS Code extension (compile, lint, package, protocol mirror) and Neovim plugin (headless nvim)"
./tests/e2e/run-editors.sh

step "MCP: the official Python SDK drives runs over stdio and Streamable HTTP; a third-party npm MCP server for the client side"
./tests/e2e/run-mcp.sh

step "MCP tests that need what run-mcp.sh installed: the Python SDK venv (mcp_agent) and the npm server (mcp_chat)"
NOCTUNE_MCP_VENV=${NOCTUNE_MCP_VENV:-$HOME/.cache/noctune-mcp-venv} \
  run_ignored mcp_agent:: mcp_chat:: -- --test-threads="${NOCTUNE_TEST_THREADS:-2}"

step "Web UI: real Chromium (chromium-headless-shell + playwright-core) against the real binary; API fuzzing from the OpenAPI document"
./tests/e2e/run-web.sh
