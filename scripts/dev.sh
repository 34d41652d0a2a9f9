#!/usr/bin/env bash
# make dev: moto (DynamoDB + Cognito) on 127.0.0.1:4566, then the local API
# Gateway on 127.0.0.1:3000 with the table, a user pool and a demo user created.
# By default it serves the items example in-process. For your own API, set
# AGPAT_MANIFEST (your agpat.toml) and AGPAT_UPSTREAM (your Lambda's invoke URL
# on loopback, e.g. from `cargo lambda watch`), optionally AGPAT_OPENAPI.
# Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port="${MOTO_PORT:-4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}" TABLE_NAME="${TABLE_NAME:-agpat-local}"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
export RUST_LOG="${RUST_LOG:-info}"
if [ -n "${AGPAT_UPSTREAM:-}" ]; then
  cargo build -q -p local-gateway
  gateway=("$root/target/debug/local-gateway" dev)
else
  cargo build -q -p items-api --bin items-dev
  gateway=("${gateway[@]}")
fi
"$root/.venv/bin/python" "$root/scripts/moto_server.py" --port "$port" >.dev-moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$DYNAMODB_ENDPOINT/moto-api/" && break
  kill -0 "$moto_pid" 2>/dev/null || { cat .dev-moto.log; echo "moto failed to start" >&2; exit 1; }
  sleep 0.1
done
"${gateway[@]}"
