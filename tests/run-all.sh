#!/usr/bin/env bash
# Installs what the tests need on a bare machine (Debian + rustup toolchain), then runs ALL tests.
# Safe to re-run: every step is skipped when already done. CI runs exactly this (`.ci/run`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a target directory outside the clone, so a fresh clone does not rebuild everything.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

# shellcheck source=tests/ignored.sh
source tests/ignored.sh # run_ignored (we are at the repository root)

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
command -v g++ >/dev/null || need_apt+=(g++)          # the same build
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

step "Real llama-server tier (llama.cpp's own server with a tiny random model and the real SmolLM2-135M-Instruct; built once, cached)"
./tests/llm-real.sh # runs the ignored tests/it/llm_real.rs with NOCTUNE_LLAMA_URL set

step "The README's run command on a fresh clone with no sibling folders: ./scripts/studio.sh opens Studio with the bundled demo model"
./tests/studio-script.sh # uses NOCTUNE_BIN (built above) and the llama kit cached by the tier before

step "Editor clients: VS Code extension (compile, lint, package, protocol mirror) and Neovim plugin (headless nvim)"
./tests/e2e/run-editors.sh

step "MCP: the official Python SDK drives runs over stdio and Streamable HTTP; a third-party npm MCP server for the client side"
./tests/e2e/run-mcp.sh

step "MCP tests that need what run-mcp.sh installed: the Python SDK venv (mcp_agent) and the npm server (mcp_chat)"
NOCTUNE_MCP_VENV=${NOCTUNE_MCP_VENV:-$HOME/.cache/noctune-mcp-venv} \
  run_ignored mcp_agent:: mcp_chat:: -- --test-threads="${NOCTUNE_TEST_THREADS:-2}"

step "Web UI: real Chromium (chromium-headless-shell + playwright-core) against the real binary; API fuzzing from the OpenAPI document"
./tests/e2e/run-web.sh
