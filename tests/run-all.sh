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
command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }

step "Build (target dir: $CARGO_TARGET_DIR)"
cargo build --all-targets --locked

step "Rust tests (unit + integration: tests/it)"
cargo test --locked -- --test-threads="${NOCTUNE_TEST_THREADS:-2}"
