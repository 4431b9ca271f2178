#!/usr/bin/env bash
# The real-project tier (issue 11): `noctune run --pack lint_fix` on the sdists of five real PyPI
# projects, each extracted into a fresh git repository, with its tests' dependencies in a venv of
# its own. Optional: not part of tests/run-all.sh (it downloads from PyPI and takes a while).
#
#   scripts/real-projects.sh                 all five (attrs requests flask rich django)
#   scripts/real-projects.sh attrs flask     only these
#
# For each project it prints: the run's outcome and exit code, commits on the result branch,
# patchsets committed / rolled back (with why), the checks' baselines (check_baseline events),
# wall time; that `git switch <branch>` works right after the run; that the branch's packages
# still import (the venv's python, the branch checkout first on sys.path, never an installed copy).
#
# It exits 1 when any project ends without commits (rich's sdist has no tests, and tests that
# fail on the base commit hold nothing back: lint edits must still commit), when an import that works on main breaks on the branch, when
# `git switch` fails, or when a project cannot be set up (the reason is printed; a project is never
# skipped silently).
#
# Pending approvals (edits above the pack's auto-approve risk) are decided as a careful user would:
# `noctune decide RUN --all-pending approve --max-risk 49`, then the rest (risk >= 50: among them
# every edit that removes a name another file uses) rejected. NOCTUNE_REAL_DECIDE=all approves
# everything instead, which leaves the import check and the tests as the only guard.
#
# Env: NOCTUNE_BIN (default $CARGO_TARGET_DIR/debug/noctune, built if missing),
#      NOCTUNE_REAL_CACHE (default ~/.cache/noctune-real: sdists/, venv-<name>/, work/<name>/,
#      audit.sqlite, results.jsonl, logs/), NOCTUNE_REAL_RESULTS (default $cache/results.jsonl),
#      NOCTUNE_REAL_DECIDE (careful | all), NOCTUNE_REAL_DJANGO_LABELS (see project_config),
#      NOCTUNE_REAL_TIMEOUT (seconds per run, default 3600).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/noctune-target}
cache=${NOCTUNE_REAL_CACHE:-$HOME/.cache/noctune-real}
decide_mode=${NOCTUNE_REAL_DECIDE:-careful}
run_timeout=${NOCTUNE_REAL_TIMEOUT:-3600}
mkdir -p "$cache/sdists" "$cache/work" "$cache/logs"
# A DB of the tier's own, so its runs do not pile up in the user's audit DB.
export NOCTUNE_STUDIO_DB=$cache/audit.sqlite
export NO_COLOR=1

case "$decide_mode" in careful | all) ;; *)
  echo "NOCTUNE_REAL_DECIDE must be careful or all, not $decide_mode" >&2
  exit 2
  ;;
esac

bin=${NOCTUNE_BIN:-$CARGO_TARGET_DIR/debug/noctune}
if [ ! -x "$bin" ]; then
  echo "== building $bin" >&2
  (cd "$root" && cargo build --locked --bin noctune) || { echo "build failed" >&2; exit 1; }
fi

# name | sdist requirement | what the tests need (pip args; {sdist} = the sdist, {src} = its extracted
# tree: the project's own pinned test requirements where it ships them) | packages to import.
# The project itself is installed from its sdist (not editable), as a user's environment has it: the
# runs must test the worktree's code all the same (the engine puts the worktree first on PYTHONPATH,
# and the import check below fails when a package comes from anywhere but the checkout).
projects=(
  "attrs|attrs==24.2.0|{sdist}[tests]|attr attrs"
  "requests|requests==2.32.3|{sdist}[socks] pytest<9 pytest-cov pytest-httpbin==2.0.0 httpbin~=0.10.0 pytest-mock trustme wheel|requests"
  "flask|flask==3.1.0|{sdist}[async,dotenv] -r {src}/requirements/tests.txt|flask"
  "rich|rich==13.9.4|{sdist} pytest|rich"
  "django|Django==5.1.4|{sdist} pytest tblib|django"
)

# A project's own configuration, committed with its sdist (what its developers would set up):
# Django's suite runs with its own runner, not pytest (under pytest every test module fails to
# collect or to set up: settings are not configured), verbosely so that it is judged per test.
# tblib: its parallel runner needs it to report a failure. The whole suite takes ~10 minutes per
# check on 2 cores (a baseline and one run per patchset), so by default a sample of its apps
# (~4,000 tests, ~20 s) is the check; NOCTUNE_REAL_DJANGO_LABELS="" runs all of it.
django_labels=${NOCTUNE_REAL_DJANGO_LABELS-utils_tests template_tests forms_tests i18n check_framework basic queries}
project_config() {
  case "$1" in
    django)
      local labels="" l
      for l in $django_labels; do labels+=", \"$l\""; done
      cat <<TOML
[tools.django_tests]
command = ["python3", "tests/runtests.py", "--parallel", "2", "-v", "2", "--noinput"$labels]
stage = "check"
timeout_secs = 3600

[policy_packs.lint_fix]
tools_allowed = ["ruff", "format", "django_tests"]
checks = ["django_tests"]
TOML
      ;;
  esac
}

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}
for w in "${want[@]}"; do
  found=0
  for p in "${projects[@]}"; do [ "${p%%|*}" = "$w" ] && found=1; done
  [ $found -eq 1 ] || { echo "unknown project $w (attrs requests flask rich django)" >&2; exit 2; }
done

results=${NOCTUNE_REAL_RESULTS:-$cache/results.jsonl}
: >"$results"
failures=0

# fail NAME WHY: a project that could not be set up or run counts as a failure, with its reason.
fail() {
  printf '{"project": "%s", "setup_error": %s}\n' "$1" "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$2")" >>"$results"
  echo "!! $1: $2" >&2
  failures=$((failures + 1))
}

sdist_of() { # REQ -> path of the cached sdist
  local req=$1 name ver f
  name=${req%%==*}
  ver=${req##*==}
  for f in "$cache/sdists/$name-$ver.tar.gz" "$cache/sdists/${name,,}-$ver.tar.gz"; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: "$req" \
    -d "$cache/sdists" >&2 || return 1
  for f in "$cache/sdists/$name-$ver.tar.gz" "$cache/sdists/${name,,}-$ver.tar.gz"; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}

# setup_venv NAME SDIST SRC PIPSPEC: the project and its tests' dependencies in $cache/venv-NAME
# (made again when PIPSPEC changes).
setup_venv() {
  local name=$1 sdist=$2 src=$3 spec=$4 venv=$cache/venv-$1 stamp
  # The stamp names how the venv was made (the spec and this recipe's version).
  stamp=$(printf 'recipe 2\n%s' "$spec" | sha256sum | cut -c1-16)
  if [ -f "$venv/.noctune-real-$stamp" ]; then
    return 0
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" || return 1
  local args=() expanded=${spec//\{sdist\}/$sdist}
  expanded=${expanded//\{src\}/$src}
  read -r -a args <<<"$expanded"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" \
    >"$cache/logs/pip-$name.log" 2>&1 || { tail -20 "$cache/logs/pip-$name.log" >&2; return 1; }
  touch "$venv/.noctune-real-$stamp"
}

# imports_ok PYTHON DIR PKG...: imports each package from DIR (and DIR/src) and checks that it
# came from there; prints the first error.
imports_ok() {
  local py=$1 dir=$2
  shift 2
  (cd "$dir" && PYTHONPATH="$dir:$dir/src" PYTHONDONTWRITEBYTECODE=1 "$py" -I -B -c '
import importlib, os, sys
d = os.path.realpath(sys.argv[1])
sys.path[:0] = [d, os.path.join(d, "src")]
for name in sys.argv[2:]:
    m = importlib.import_module(name)
    f = os.path.realpath(getattr(m, "__file__", "") or "")
    if not f.startswith(d + os.sep):
        sys.exit(f"{name} was imported from {f}, not from the checkout")
' "$dir" "$@" 2>&1 | tail -3)
}

# decide_pending RUN: one round of bulk decisions (see the header).
decide_pending() {
  local run=$1
  if [ "$decide_mode" = all ]; then
    "$bin" decide "$run" --all-pending approve --by real-projects --reason "real-projects tier: approve all" >/dev/null 2>&1
  else
    "$bin" decide "$run" --all-pending approve --max-risk 49 --by real-projects \
      --reason "real-projects tier: risk below 50" >/dev/null 2>&1
    "$bin" decide "$run" --all-pending reject --by real-projects \
      --reason "real-projects tier: risk 50 or more (public API or a large rewrite)" >/dev/null 2>&1
  fi
  return 0
}

for entry in "${projects[@]}"; do
  IFS='|' read -r name req spec pkgs <<<"$entry"
  selected "$name" || continue
  echo
  echo "== $name ($req)"
  if ! sdist=$(sdist_of "$req"); then
    fail "$name" "could not download the sdist of $req from PyPI"
    continue
  fi
  echo "   sdist: $sdist"
  work=$cache/work/$name
  rm -rf "$work"
  mkdir -p "$work"
  if ! tar -xzf "$sdist" -C "$work" --strip-components=1; then
    fail "$name" "could not extract $sdist"
    continue
  fi
  config=$(project_config "$name")
  [ -z "$config" ] || printf '%s\n' "$config" >"$work/noctune.toml"
  (
    cd "$work" &&
      git init -q -b main &&
      git add -A &&
      git -c user.name=real-projects -c user.email=real-projects@noctune.invalid -c commit.gpgsign=false \
        commit -q --no-verify -m "$req sdist"
  ) || { fail "$name" "could not make a git repository of the sdist"; continue; }
  echo "   repo: $work ($(git -C "$work" ls-files | wc -l) files, $(git -C "$work" ls-files '*.py' | wc -l) .py)"
  venv=$cache/venv-$name
  if ! setup_venv "$name" "$sdist" "$work" "$spec"; then
    fail "$name" "could not install it and its test dependencies into $venv (pip install $spec; log: $cache/logs/pip-$name.log)"
    continue
  fi

  # The imports on main, before the run: only one that works there can be broken by the run.
  read -r -a pkg_list <<<"$pkgs"
  main_import=$(imports_ok "$venv/bin/python" "$work" "${pkg_list[@]}")
  main_import_rc=$?

  log=$cache/logs/run-$name.log
  start=$(date +%s.%N)
  PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" timeout "$run_timeout" \
    "$bin" run --repo "$work" --pack lint_fix >"$log" 2>&1 &
  runpid=$!
  run_id=""
  while kill -0 "$runpid" 2>/dev/null; do
    sleep 2
    if [ -z "$run_id" ]; then
      run_id=$(ls "$work/.noctune_cache/runs" 2>/dev/null | head -1)
    fi
    [ -n "$run_id" ] && decide_pending "$run_id"
  done
  wait "$runpid"
  rc=$?
  end=$(date +%s.%N)
  [ -n "$run_id" ] || run_id=$(ls "$work/.noctune_cache/runs" 2>/dev/null | head -1)
  if [ -z "$run_id" ]; then
    fail "$name" "noctune run exited $rc without starting a run (log: $log): $(tail -3 "$log")"
    continue
  fi

  # The result branch, switched to in the user's tree right after the run.
  branch=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["branch"])' \
    "$work/.noctune_cache/runs/$run_id/state/run.json")
  switch_out="" switch_rc=0 branch_import="" branch_import_rc=0 commits=0
  if git -C "$work" rev-parse --verify -q "refs/heads/$branch" >/dev/null; then
    commits=$(git -C "$work" rev-list --count "main..$branch")
    switch_out=$(git -C "$work" switch -q "$branch" 2>&1)
    switch_rc=$?
    if [ $switch_rc -eq 0 ]; then
      branch_import=$(imports_ok "$venv/bin/python" "$work" "${pkg_list[@]}")
      branch_import_rc=$?
      git -C "$work" switch -q main
    fi
  fi

  python3 "$here/real_projects_report.py" record \
    --project="$name" --req="$req" --run-dir="$work/.noctune_cache/runs/$run_id" --exit-code="$rc" \
    --seconds="$(python3 -c "print(round($end - $start, 1))")" --commits="$commits" \
    --switch-rc="$switch_rc" --switch-out="$switch_out" \
    --main-import-rc="$main_import_rc" --main-import="$main_import" \
    --branch-import-rc="$branch_import_rc" --branch-import="$branch_import" \
    --log="$log" >>"$results" || fail "$name" "could not read the run's records in $work/.noctune_cache/runs/$run_id"
  python3 "$here/real_projects_report.py" show --project="$name" "$results"
done

echo
python3 "$here/real_projects_report.py" table "$results"
python3 "$here/real_projects_report.py" verdict "$results" || failures=$((failures + 1))
[ $failures -eq 0 ]
