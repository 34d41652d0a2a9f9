#!/usr/bin/env bash
# make dev: moto (DynamoDB + Cognito) on 127.0.0.1:4566, then the local API
# Gateway on 127.0.0.1:3000 with the table, a user pool and a demo user created.
# By default it serves the items example in-process. For your own API, set
# AGPAT_MANIFEST (your agpat.toml) and AGPAT_UPSTREAM (your Lambda's invoke URL
# on loopback, e.g. from `cargo lambda watch`), optionally AGPAT_OPENAPI.
# Ctrl-C stops both.
#
# It says what it is doing, step by step: [1/6] venv, [2/6] build (with
# cargo's own progress: the first run compiles the whole dependency tree, which
# takes minutes on two cores), [3/6] moto, then the gateway's own [4/6] token
# table, [5/6] user pool and [6/6] demo user, and the walkthrough.
# AGPAT_DEV_DIR: where .dev/state.json and the moto log go (default: the
# repository root, where `make token` looks); the e2e check uses a scratch one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
devdir="${AGPAT_DEV_DIR:-$root}"
step() { printf '[%s/6] %s\n' "$1" "$2"; }
port="${MOTO_PORT:-4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}" TABLE_NAME="${TABLE_NAME:-agpat-local}"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
export RUST_LOG="${RUST_LOG:-info}"
if [ -n "${AGPAT_UPSTREAM:-}" ]; then
  build=(-p local-gateway)
  gateway=("$root/target/debug/local-gateway" dev)
else
  build=(-p items-api --bin items-dev)
  gateway=("$root/target/debug/items-dev" dev)
fi
step 1 "Python venv (.venv: moto and the test tools; installed on the first run only)"
"$root/scripts/ensure-venv.sh"
step 2 "cargo build ${build[*]} (the first run compiles every dependency: several minutes)"
# Cargo's own progress: a line per crate, and its bar on a terminal.
CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-auto}" cargo build "${build[@]}"
mkdir -p "$devdir"
moto_log="$devdir/.dev-moto.log"
step 3 "starting moto (DynamoDB + Cognito) on 127.0.0.1:$port"
"$root/.venv/bin/python" "$root/scripts/moto_server.py" --port "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$DYNAMODB_ENDPOINT/moto-api/" && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$moto_log"; echo "moto failed to start" >&2; exit 1; }
  sleep 0.1
done
curl -sf -o /dev/null "$DYNAMODB_ENDPOINT/moto-api/" || { cat "$moto_log"; echo "moto did not answer on port $port" >&2; exit 1; }
# Steps 4-6 are the gateway's (local-gateway/src/dev.rs); it writes .dev/ here.
cd "$devdir"
"${gateway[@]}"
