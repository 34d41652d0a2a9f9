#!/usr/bin/env bash
# make test's phases, one after the other, each announced before it starts
# (==> [3/9] clippy: …) and timed when it ends, so a long phase (a cold build,
# the e2e suite) never looks like a hang. Stops at the first failing phase, as
# make does, and closes with every phase's time and a count line.
# Usage: MAKE=make scripts/phases.sh PHASE... (each PHASE is a make target).
set -uo pipefail
make_cmd="${MAKE:-make}"

describe() {
  case "$1" in
    venv) echo "the project-local Python venv" ;;
    fmt-check) echo "cargo fmt --check" ;;
    clippy) echo "cargo clippy, warnings are errors (compiles the workspace)" ;;
    threat-model) echo "every test named in threat-model.md exists" ;;
    lint-workflows) echo "GitHub workflows: actionlint, zizmor, pipeline ordering" ;;
    test-rust) echo "cargo test on a fresh moto (compiles the tests, then runs them)" ;;
    test-e2e) echo "e2e against a real local gateway: browser, smoke, load, schemathesis" ;;
    test-infra) echo "the CDK app: typecheck, lint, Jest, synth, cfn-lint, checkov" ;;
    test-examples) echo "the Node.js business-Lambda example" ;;
    *) echo "make $1" ;;
  esac
}

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

total=$#
passed=0
failed=0
times=()
run_start=$SECONDS
i=0
for phase in "$@"; do
  i=$((i + 1))
  echo "==> [$i/$total] $phase: $(describe "$phase")"
  start=$SECONDS
  "$make_cmd" --no-print-directory "$phase"
  rc=$?
  took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    echo "<== $phase passed in $(duration "$took")"
    times+=("$(printf '  %-16s %s' "$phase" "$(duration "$took")")")
  else
    failed=$((failed + 1))
    echo "<== $phase FAILED (exit $rc) after $(duration "$took")"
    times+=("$(printf '  %-16s %s  FAILED' "$phase" "$(duration "$took")")")
    break
  fi
done
echo "make test: phase times (total $(duration $((SECONDS - run_start))))"
printf '%s\n' "${times[@]}"
skipped=$((total - passed - failed))
if [ "$skipped" -gt 0 ]; then
  echo "phases: $passed passed, $failed failed, $skipped skipped"
else
  echo "phases: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
