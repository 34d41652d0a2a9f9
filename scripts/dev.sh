#!/usr/bin/env bash
# Local development: moto (DynamoDB + Cognito) on a fixed loopback port, with the
# token table created. The local API Gateway joins this in a later release.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port="${MOTO_PORT:-4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}" TABLE_NAME="${TABLE_NAME:-tokens}"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
"$root/.venv/bin/python" "$root/scripts/moto_server.py" --port "$port" &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$DYNAMODB_ENDPOINT/moto-api/" && break
  sleep 0.1
done
cargo run --quiet -p shared --example create-table
echo "DynamoDB (moto) ready at $DYNAMODB_ENDPOINT, table $TABLE_NAME. Ctrl-C to stop."
wait "$moto_pid"
