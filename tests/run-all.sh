#!/usr/bin/env bash
# Installs what the tests need on a bare machine (Debian + rustup toolchain), then runs ALL tests.
# Safe to re-run: every step is skipped when already done. CI runs exactly this (`.ci/run`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a target directory outside the clone, so a fresh clone does not rebuild everything.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

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

step "Build (target dir: $CARGO_TARGET_DIR)"
cargo build --all-targets --locked

step "Rust tests (unit + integration: tests/it)"
cargo test --locked -- --test-threads="${NOCTUNE_TEST_THREADS:-2}"

step "Real llama-server tier (llama.cpp's own server with a tiny random model; built once, cached)"
./tests/llm-real.sh

step "Editor clients: VS Code extension (compile, lint, package, protocol mirror) and Neovim plugin (headless nvim)"
./tests/e2e/run-editors.sh

step "MCP: the official Python SDK drives runs over stdio and Streamable HTTP; a third-party npm MCP server for the client side"
./tests/e2e/run-mcp.sh

step "Web UI: real Chromium (chromium-headless-shell + playwright-core) against the real binary; API fuzzing from the OpenAPI document"
./tests/e2e/run-web.sh
