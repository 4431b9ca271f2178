#!/usr/bin/env bash
# Builds noctune and runs it on a demo copy of the bundled fixture project.
#   ./scripts/studio.sh            a lint_fix run on the demo repository (approve its waiting edit to finish)
#   ./scripts/studio.sh PACK       another pack (py_upgrade, pkg_lint, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
python3 -c 'import ruff, pytest' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check ruff==0.17.6 pytest==9.2.0
cargo build --release --locked
bin=$CARGO_TARGET_DIR/release/noctune
demo=${NOCTUNE_DEMO_REPO:-$HOME/.cache/noctune-demo}
if [ ! -d "$demo/.git" ]; then
  mkdir -p "$demo" && cp -r fixtures/pyproj/. "$demo/"
  git -C "$demo" init -q -b main
  git -C "$demo" -c core.hooksPath=/dev/null add -A
  git -C "$demo" -c core.hooksPath=/dev/null -c user.name=demo -c user.email=demo@localhost commit -qm "demo project"
fi
echo "demo repository: $demo   (noctune binary: $bin)"
exec "$bin" run --repo "$demo" --pack "${1:-lint_fix}"
