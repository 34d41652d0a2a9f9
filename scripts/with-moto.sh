#!/usr/bin/env bash
# Run a command with a fresh single-threaded moto server on a free loopback port.
# Exports DYNAMODB_ENDPOINT and MOTO_ENDPOINT unless DYNAMODB_ENDPOINT is already
# set (then the command runs against that endpoint, e.g. DynamoDB Local or AWS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${DYNAMODB_ENDPOINT:-}" ]; then
  exec "$@"
fi

"$root/scripts/ensure-venv.sh"
tmp=$(mktemp -d)
log="$tmp/moto.log"
"$root/.venv/bin/python" "$root/scripts/moto_server.py" --port 0 --port-file "$tmp/port" >"$log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

for _ in $(seq 1 200); do
  if [ -s "$tmp/port" ]; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$log" >&2; echo "moto failed to start" >&2; exit 1; fi
  sleep 0.1
done
[ -s "$tmp/port" ] || { cat "$log" >&2; echo "moto did not report a port" >&2; exit 1; }
port=$(cat "$tmp/port")
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
export MOTO_ENDPOINT="$DYNAMODB_ENDPOINT"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
echo "with-moto: moto at $DYNAMODB_ENDPOINT"
"$@"
