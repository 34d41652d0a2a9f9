#!/usr/bin/env bash
# Builds the four Lambdas (the business one is the `api` binary of the
# examples/items-api example) for provided.al2023 on arm64 with cargo-lambda
# (PyPI: pip install cargo-lambda, which brings Zig for cross-linking).
# Output: target/lambda/<function>/bootstrap (+ bootstrap.zip), the layout the
# CDK app reads (context lambdaAssets, default ../target/lambda).
set -euo pipefail
cd "$(dirname "$0")/.."
for function in authorizer token-service api offboarding; do
  if [ "$function" = api ]; then
    cargo lambda build --release --arm64 --locked -p items-api --bin api
  else
    cargo lambda build --release --arm64 --locked -p "$function"
  fi
  # A zip beside the binary, for uploading as a build artifact.
  python3 - "target/lambda/$function" <<'PY'
import os, sys, zipfile
d = sys.argv[1]
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o755 << 16
with zipfile.ZipFile(os.path.join(d, "bootstrap.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(info, open(os.path.join(d, "bootstrap"), "rb").read())
PY
done
ls -l target/lambda/*/
