# Sourced by tests/run-all.sh and tests/llm-real.sh.
# run_ignored FILTER... [-- LIBTEST-ARGS...]: runs the #[ignore = "needs …"] tests of tests/it whose names match
# a filter (call it once what they need is installed), and fails if they fail or if no test matched (a renamed
# test must not turn a tier into a no-op).
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
