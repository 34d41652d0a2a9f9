#!/usr/bin/env bash
# make bench: every performance figure of BENCHMARKS.md, on this machine, on
# loopback only, each step bounded in count and time. Results in target/bench/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/bench"
mkdir -p "$out"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"

echo "== peers: aws-jwt-verify into bench/peer/node_modules"
(cd bench/peer && npm ci --silent --no-audit --no-fund)

echo "== criterion (release, LTO)"
cargo bench -q -p authorizer --bench decision -- --warm-up-time 1 --measurement-time 3 2>&1 | tee "$out/criterion.txt"

echo "== peer comparison: same tokens, one core each"
cargo run -q --release -p authorizer --example peer_compare -- "$out/peer" 2000 | tee "$out/peer-rust.json"
node bench/peer/verify.mjs "$out/peer" | tee "$out/peer-node.json"

echo "== cold start and peak RSS under a stub Lambda Runtime API"
cargo build -q --release -p authorizer --bin authorizer
python3 - "$out/peer" "$out/event.json" <<'PY'
import json, sys
d, path = sys.argv[1], sys.argv[2]
token = json.load(open(f"{d}/tokens.json"))[0]
event = json.load(open("authorizer/tests/fixtures/request-event.json"))
event["headers"]["Authorization"] = f"Bearer {token}"
event["multiValueHeaders"].pop("Authorization", None)
json.dump(event, open(path, "w"))
PY
python3 bench/coldstart.py agpat-rust "$out/event.json" "$out/peer/jwks.json" 10 10000 -- \
  "$root/target/release/authorizer" | tee "$out/coldstart-rust.json"
python3 bench/coldstart.py aws-jwt-verify-node "$out/event.json" "$out/peer/jwks.json" 10 10000 -- \
  node "$root/bench/peer/node-authorizer.mjs" | tee "$out/coldstart-node.json"

echo "== binary sizes (stripped)"
{
  echo "{\"x86_64_bytes\": $(stat -c %s target/release/authorizer),"
  if [ -f target/lambda/authorizer/bootstrap ]; then
    echo "\"arm64_bytes\": $(stat -c %s target/lambda/authorizer/bootstrap)}"
  else
    echo "\"arm64_bytes\": null}"
  fi
} | tee "$out/sizes.json"

echo "== local gateway throughput (wrk, loopback, 10 s)"
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else echo "wrk missing" >&2; exit 1; fi
fi
cargo build -q --release -p items-api --bin items-dev
scripts/ensure-venv.sh
scripts/with-moto.sh bash -c '
  set -euo pipefail
  work=$(mktemp -d); port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])")
  (cd "$work" && TABLE_NAME=bench GATEWAY_ADDR=127.0.0.1:$port RUST_LOG=error AUTHORIZER_CACHE_TTL_SECONDS=300 \
     exec '"$root"'/target/release/items-dev dev) >"$work/gw.log" 2>&1 &
  gw=$!; trap "kill $gw 2>/dev/null || true" EXIT
  for _ in $(seq 1 200); do grep -q "running at" "$work/gw.log" && break; sleep 0.1; done
  jwt=$(cd "$work" && '"$root"'/target/release/items-dev token)
  pat=$(curl -sf -X POST http://127.0.0.1:$port/tokens -H "authorization: Bearer $jwt" -H "content-type: application/json" \
        -d "{\"name\":\"bench\",\"scopes\":[\"items:read\"],\"expiresInDays\":1}" | python3 -c "import sys,json; print(json.load(sys.stdin)[\"token\"])")
  wrk -t2 -c32 -d10s --latency -H "authorization: Bearer $pat" http://127.0.0.1:$port/me
' | tee "$out/gateway-wrk.txt"

python3 bench/summarize.py "$out" | tee "$out/summary.md"
