#!/usr/bin/env bash
# Thin wrapper: the smoke test is scripts/smoke_test.py (see its docstring).
# It needs boto3: the project venv has it (make venv); on GitHub Actions the
# deploy jobs install it hash-pinned from .github/requirements/smoke.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=python3
[ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"
exec "$python" -B "$root/scripts/smoke_test.py" "$@"
