#!/usr/bin/env bash
# Scan the synthesized CloudFormation templates with checkov; fail on any
# finding not skipped in the template itself (Metadata.checkov.skip on the
# resource, each with its reason).
#
#   scripts/check-iac.sh infra/cdk.out    # scans cdk.out/{dev,prod}/*.template.json
#
# checkov pins dozens of packages that clash with .venv's, so it gets its own
# venv, .venv-iac, built here from scripts/checkov-requirements.txt and
# rebuilt only when that file (or the Python) changes. Nothing is fetched at
# scan time: no platform mapping, no policy download.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/check-iac.sh <cdk.out directory holding dev/ and prod/>}
venv="$root/.venv-iac"
reqs="$root/scripts/checkov-requirements.txt"
stamp="$venv/.requirements.sha256"
python=${PYTHON:-python3}

want=$({ cat "$reqs"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if ! { [ -x "$venv/bin/checkov" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "check-iac: installing checkov into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # Never committed, whatever the repository's .gitignore says.
  echo '*' >"$venv/.gitignore"
  # Exactly the pinned set: --no-deps so that nothing floats, then pip check.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$reqs"
  "$venv/bin/pip" check --disable-pip-version-check >/dev/null
  echo "$want" >"$stamp"
fi

templates=()
for env in dev prod; do
  found=("$out/$env"/*.template.json)
  if [ ! -f "${found[0]}" ]; then
    echo "check-iac: no template in $out/$env (run pnpm run synth first)" >&2
    exit 1
  fi
  templates+=("${found[@]}")
done

args=(--framework cloudformation --skip-download --quiet --output json)
for t in "${templates[@]}"; do args+=(--file "$t"); done
report=$(mktemp)
trap 'rm -f "$report"' EXIT
start=$(date +%s)
# checkov exits 1 on findings; the summary below decides.
BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
  "$venv/bin/checkov" "${args[@]}" >"$report" || true
seconds=$(($(date +%s) - start))

"$venv/bin/python" - "$report" "$seconds" "$root" "${templates[@]}" <<'PY'
import json, os, sys

report, seconds, root, templates = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
try:
    data = json.load(open(report))
except ValueError:
    sys.exit(f"check-iac: checkov gave no JSON report:\n{open(report).read()[-2000:]}")
runs = data if isinstance(data, list) else [data]
passed = failed = skipped = parse_errors = resources = 0
for run in runs:
    summary = run.get("summary", run)
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    parse_errors += summary.get("parsing_errors", 0)
    resources += summary.get("resource_count", 0)
    for check in run.get("results", {}).get("failed_checks", []):
        where = os.path.relpath(check["file_abs_path"], root) if check.get("file_abs_path") else check["file_path"]
        print(f"FAIL {check['check_id']} {check['resource']} ({where}): {check['check_name']}")
print(
    f"check-iac: {len(templates)} templates, {resources} resources: "
    f"{passed} passed, {failed} failed, {skipped} skipped in the templates, "
    f"{parse_errors} parsing errors ({seconds}s)"
)
if failed or parse_errors or resources == 0:
    print("check-iac: fix the finding, or skip it on the resource with Metadata.checkov.skip and a reason", file=sys.stderr)
    sys.exit(1)
PY
