#!/usr/bin/env bash
# Create the project-local Python venv (moto, schemathesis, cfn-lint), once. Re-installs
# when a requirements file changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
reqs=("$root"/scripts/requirements-*.txt)
stamp="$venv/.requirements.sha256"
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "ensure-venv: installing moto, schemathesis and cfn-lint into $venv"
python3 -m venv "$venv"
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
"$venv/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
echo "$want" >"$stamp"
