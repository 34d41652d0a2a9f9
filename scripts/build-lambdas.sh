#!/usr/bin/env bash
# Builds the six Lambda packages (the business one is the `api` binary of the
# examples/items-api example; `expiry` runs as the expiry sweeper and the
# owner-email notifier) for provided.al2023 on arm64 with cargo-lambda
# (PyPI: pip install cargo-lambda, which brings Zig for cross-linking).
# Output: target/lambda/<function>/bootstrap.zip (beside cargo-lambda's
# bootstrap), the layout the CDK app reads (context lambdaAssets, default
# ../target/lambda). The zip is the deployment package: the construct uploads
# it as is, and CI uploads the same file as a build artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
for function in authorizer token-service api offboarding migrator expiry; do
  if [ "$function" = api ]; then
    cargo lambda build --release --arm64 --locked -p items-api --bin api
  else
    cargo lambda build --release --arm64 --locked -p "$function"
  fi
  # The deployment package: only `bootstrap`, executable, with a fixed
  # timestamp so that an unchanged binary gives an unchanged asset hash.
  python3 - "target/lambda/$function" <<'PY'
import os, sys, zipfile
d = sys.argv[1]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o755 << 16
info.create_system = 3
partial = os.path.join(d, "bootstrap.zip.partial")
with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(info, open(os.path.join(d, "bootstrap"), "rb").read())
os.replace(partial, os.path.join(d, "bootstrap.zip"))
PY
done
ls -l target/lambda/*/
