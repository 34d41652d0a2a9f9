#!/usr/bin/env bash
# agpat-context is for business Lambdas: it must build on its own, without
# the token store, argon2 or the AWS SDK (shared's `store` feature off).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy -q -p agpat-context --all-targets --locked -- -D warnings
heavy=$(cargo tree -q -p agpat-context -e normal -F axum --prefix none --locked \
  | grep -E '^(aws-sdk-[a-z]+|aws-config|argon2) ' | sort -u || true)
if [ -n "$heavy" ]; then
  echo "agpat-context pulls in: $heavy" >&2
  exit 1
fi
echo "context-slim: agpat-context builds alone, without the AWS SDK or argon2"
