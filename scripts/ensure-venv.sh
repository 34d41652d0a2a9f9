#!/usr/bin/env bash
# Create the project-local Python venv (moto, schemathesis), once. Re-installs
# when a requirements file changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
reqs=("$root/scripts/requirements-moto.txt" "$root/scripts/requirements-e2e.txt")
stamp="$venv/.requirements.sha256"
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "ensure-venv: installing moto and schemathesis into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "${reqs[0]}" -r "${reqs[1]}"
echo "$want" >"$stamp"
