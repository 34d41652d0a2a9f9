#!/usr/bin/env bash
# Checks Conventional Commits subjects. Usage:
#   check-commit-msg.sh FILE            (commit-msg hook: the message file)
#   check-commit-msg.sh --range A..B    (CI: every commit in a range)
set -euo pipefail
pattern='^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([a-z0-9_./,-]+\))?!?: .+'
check() {
  local subject=$1
  case "$subject" in Merge\ *|Revert\ \"*|fixup!*|squash!*) return 0 ;; esac
  if ! printf '%s\n' "$subject" | grep -Eq "$pattern"; then
    echo "not a Conventional Commits subject: $subject" >&2
    echo "expected: type(scope): summary   with type in feat fix docs style refactor perf test build ci chore revert" >&2
    return 1
  fi
}
if [ "${1:-}" = "--range" ]; then
  status=0
  while IFS= read -r subject; do check "$subject" || status=1; done < <(git log --format=%s "$2")
  exit $status
fi
check "$(head -n1 "$1")"
