#!/usr/bin/env bash
# Create the project-local Python venv (moto, schemathesis, Playwright, cfn-lint, …:
# scripts/requirements-*.txt), once. Re-installs when a requirements file changes.
# pip's own output shows the progress (about 30 s on the first run, from an empty pip cache).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
reqs=("$root"/scripts/requirements-*.txt)
stamp="$venv/.requirements.sha256"
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "ensure-venv: installing $(basename -a "${reqs[@]}" | tr '\n' ' ')into $venv"
python3 -m venv "$venv"
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
# pip's own progress (a line per package), less the lines about what is already there.
# Playwright drives Debian's chromium (scripts/e2e/docs_browser.py): never a download.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install --disable-pip-version-check --progress-bar off "${args[@]}" |
  { grep -v '^Requirement already satisfied' || true; }
echo "$want" >"$stamp"
