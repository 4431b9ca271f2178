#!/usr/bin/env bash
# Browser tests of the /studio web UI: installs what they need (Debian's chromium-headless-shell,
# playwright-core from package-lock.json, never `playwright install`; schemathesis from PyPI for
# the API fuzz test), builds the binary and runs
# tests/e2e/web/*.test.mjs with node's test runner. Screenshots land in tests/e2e/web/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}

if [ ! -x /usr/bin/chromium-headless-shell ]; then
  echo "== installing chromium-headless-shell (Debian)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends chromium-headless-shell
fi
command -v node >/dev/null || { echo "node (>= 20) is needed for the browser tests" >&2; exit 1; }
command -v git >/dev/null || { echo "git is needed to make the fixture repositories" >&2; exit 1; }

# schemathesis (PyPI, pinned) for the API fuzz test, in a venv of its own.
VENV=${NOCTUNE_TOOLS_DIR:-$HOME/.cache/noctune-tools}/schemathesis-4.32.5
if [ ! -x "$VENV/bin/st" ]; then
  echo "== installing schemathesis 4.32.5 into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
export SCHEMATHESIS="$VENV/bin/st"

echo "== npm ci (tests/e2e/web)"
(cd tests/e2e/web && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${NOCTUNE_BIN:-}" ]; then
  echo "== cargo build --bin noctune"
  cargo build --bin noctune ${CARGO_LOCKED:+--locked}
  export NOCTUNE_BIN="$CARGO_TARGET_DIR/debug/noctune"
fi

echo "== browser tests"
cd tests/e2e/web
mkdir -p screenshots
node --test --test-concurrency=1 --test-reporter=spec *.test.mjs
