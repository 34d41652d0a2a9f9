#!/usr/bin/env bash
# make bench: every figure of issue #17 and BENCHMARKS.md in one run, on this
# machine, loopback only. Each step runs under `timeout` (its limit is printed)
# and is timed; a failed step is reported and the others still run. The raw
# outputs go to target/bench/ (the previous run's move to target/bench.prev/),
# then bench/summarize.py writes target/bench/summary.md and refreshes the
# marked tables of BENCHMARKS.md.
#
#   scripts/bench.sh               the whole run
#   scripts/bench.sh STEP...       only these steps (e.g. `gateway arm64 sizes`),
#                                  into $BENCH_OUT (default target/bench), nothing
#                                  moved away and BENCHMARKS.md left alone
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="${BENCH_OUT:-$root/target/bench}"
export BENCH_ROOT="$root" BENCH_OUT="$out"

# Every step, in order, with its time limit in seconds. The limits of the
# steps that compile include a cold release (LTO) build on two cores.
STEPS=(
  "setup 900"       # venv (moto), bench/requirements.txt (cargo-lambda), aws-jwt-verify
  "criterion 3600"  # P1, P1e, P2, P2e, P3: cargo bench, every row
  "peer 1800"       # aws-jwt-verify side by side, same tokens, one core each
  "coldstart 1800"  # P4, P6: exec -> first decision (10 starts), RSS after 10^4
  "arm64 3600"      # P5: cargo lambda build --release --arm64
  "sizes 600"       # stripped x86_64 and arm64 authorizer binaries
  "gateway 1800"    # P7: wrk and the local gateway pinned to separate cores
  "fleet 1800"      # fleet model, its validation through the local gateway, P8 (p8.json)
  "dpop 900"        # the DPoP replay store on moto: first use, replay, racers (dpop.json)
)

# ---------------------------------------------------------------- the steps

step_setup() {
  scripts/ensure-venv.sh
  echo "bench/requirements.txt into .venv"
  .venv/bin/pip install --disable-pip-version-check --progress-bar off -q -r bench/requirements.txt
  PATH="$root/.venv/bin:$PATH" cargo lambda --version
  echo "aws-jwt-verify into bench/peer/node_modules"
  (cd bench/peer && npm ci --silent --no-audit --no-fund)
}

step_criterion() {
  cargo bench -q --locked -p authorizer --bench decision -- --warm-up-time 1 --measurement-time 3 2>&1 |
    tee "$out/criterion.txt"
}

step_peer() {
  cargo run -q --locked --release -p authorizer --example peer_compare -- "$out/peer" 2000 | tee "$out/peer-rust.json"
  node bench/peer/verify.mjs "$out/peer" | tee "$out/peer-node.json"
}

step_coldstart() {
  cargo build -q --locked --release -p authorizer --bin authorizer
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
}

# cargo-lambda (PyPI, in .venv with its Zig) cross-links for provided.al2023
# on arm64 as `make lambdas` does; its release build adds panic=abort and
# target-cpu=neoverse-n1. The size is recorded only when this run built it.
step_arm64() {
  local rc=0
  rm -f "$out/arm64-bytes"
  echo "cargo lambda build --release --arm64 --locked -p authorizer (log: $out/arm64-build.log)"
  PATH="$root/.venv/bin:$PATH" cargo lambda build --release --arm64 --locked -p authorizer \
    >"$out/arm64-build.log" 2>&1 || rc=$?
  grep -v '^ *Compiling ' "$out/arm64-build.log" || true
  [ "$rc" = 0 ] || return "$rc"
  stat -c %s target/lambda/authorizer/bootstrap | tee "$out/arm64-bytes"
}

step_sizes() {
  cargo build -q --locked --release -p authorizer --bin authorizer
  local bin arm_bytes=null arm_error=null
  for bin in target/release/authorizer target/lambda/authorizer/bootstrap; do
    if [ -f "$bin" ]; then echo "$bin: $(file -b "$bin" 2>/dev/null | grep -o 'not stripped\|stripped' || echo '?')"; fi
  done
  if [ -s "$out/arm64-bytes" ]; then
    arm_bytes=$(cat "$out/arm64-bytes")
  else
    # The arm64 step's first error line says why there is no figure.
    arm_error=$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' \
      "$(grep -v '^ *Compiling ' "$out/arm64-build.log" 2>/dev/null | grep -m1 -i 'error' ||
        echo 'the arm64 step did not run or did not finish')")
  fi
  printf '{"x86_64_bytes": %s, "arm64_bytes": %s, "arm64_error": %s}\n' \
    "$(stat -c %s target/release/authorizer)" "$arm_bytes" "$arm_error" | tee "$out/sizes.json"
}

# P7. The gateway (with moto, which only the first request reaches: the
# authorizer cache is on for 300 s) runs on core 1, wrk on core 0: neither
# steals the other's core, so the tail latency is the gateway's own (its tokio
# runtime sees one core and runs one worker). One wrk thread, 32 connections:
# in two runs on the idle machine (usage plans off) the gateway's one core was
# saturated from 8 connections on (40-45k req/s at 8, 16, 32 and 64), while
# p99 grew with the queue (0.4-0.6, 0.6-0.9, 1.1-1.3, 1.9-2.2 ms); 32 keeps it
# saturated with p99 well inside 5 ms. Usage plans are off
# (AGPAT_USAGE_PLANS=off): the demo's `standard` tier allows 1,000 req/s per
# key, and its 429s would measure nothing.
GATEWAY_CONNECTIONS=32
step_gateway() {
  [ "$(nproc)" -ge 2 ] || { echo "needs two cores to pin wrk and the gateway apart"; return 1; }
  if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else echo "wrk missing" >&2; return 1; fi
  fi
  cargo build -q --locked --release -p items-api --bin items-dev
  # shellcheck disable=SC2016 # expanded by the inner shell, under with-moto.sh
  GATEWAY_CONNECTIONS=$GATEWAY_CONNECTIONS taskset -c 1 scripts/with-moto.sh bash -c '
    set -euo pipefail
    work=$(mktemp -d)
    port=$(python3 -c "import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])")
    (cd "$work" && AGPAT_USAGE_PLANS=off TABLE_NAME=bench GATEWAY_ADDR=127.0.0.1:$port RUST_LOG=error AUTHORIZER_CACHE_TTL_SECONDS=300 \
       exec "$BENCH_ROOT/target/release/items-dev" dev) >"$work/gw.log" 2>&1 &
    gw=$!
    trap "kill $gw 2>/dev/null || true; rm -rf $work" EXIT
    for _ in $(seq 1 300); do grep -q "running at" "$work/gw.log" && break; sleep 0.1; done
    grep -q "running at" "$work/gw.log" || { cat "$work/gw.log" >&2; echo "the gateway did not start" >&2; exit 1; }
    jwt=$(cd "$work" && "$BENCH_ROOT/target/release/items-dev" token)
    pat=$(curl -sf -X POST "http://127.0.0.1:$port/tokens" -H "authorization: Bearer $jwt" -H "content-type: application/json" \
          -d "{\"name\":\"bench\",\"scopes\":[\"items:read\"],\"expiresInDays\":1}" |
          python3 -c "import sys,json; print(json.load(sys.stdin)[\"token\"])")
    # The one request that reaches the authorizer (argon2, one read from moto).
    curl -sf -o /dev/null "http://127.0.0.1:$port/me" -H "authorization: Bearer $pat"
    echo "pinned: gateway and moto on core 1 (taskset -c 1), wrk on core 0 (taskset -c 0)"
    taskset -c 0 wrk -t1 -c"$GATEWAY_CONNECTIONS" -d10s --latency -H "authorization: Bearer $pat" "http://127.0.0.1:$port/me"
  ' | tee "$out/gateway-wrk.txt"
  if grep -q "Non-2xx" "$out/gateway-wrk.txt"; then
    echo "WARNING: some answers were not 2xx; the figures are not those of GET /me (P7 says so)" >&2
  fi
}

# ---------------------------------------------------------------- DPoP replay store
step_dpop() {
  # One conditional put per proof on a real DynamoDB API (moto, loopback):
  # latency of a first use and of a replay, and racers on the same keys.
  scripts/with-moto.sh cargo run -q --release --locked -p authorizer --example replay_store -- "$out/dpop.json" 1000
}

# ---------------------------------------------------------------- fleet model
step_fleet() {
  # The model's trace (seed 17), replayed through the real local gateway on
  # moto (fleet-validate), compared with the model's prediction (exit 1 past
  # 10 %), then the model at scale: target/bench/fleet*.md, docs/fleet-*.png.
  .venv/bin/python bench/fleet.py trace --out "$out/fleet-trace.json"
  scripts/with-moto.sh cargo run -q --locked -p local-gateway --example fleet-validate -- \
    "$out/fleet-trace.json" --out "$out/fleet-measured.json"
  .venv/bin/python bench/fleet.py validate --trace "$out/fleet-trace.json" \
    --measured "$out/fleet-measured.json" --out "$out"
  .venv/bin/python bench/fleet.py report --out "$out"
  # P8: argon2 evaluations per genuine token per instance, counted in the
  # replay (every scenario: steady, flushes, deploys, allow-lists).
  python3 - "$out/fleet-trace.json" "$out/fleet-measured.json" "$out/p8.json" <<'PY'
import json, sys
trace = json.load(open(sys.argv[1]))
measured = json.load(open(sys.argv[2]))
pats = trace["params"]["pats"]
rows = [
    {"scenario": s["name"], "argon2": s["argon2_evaluations"], "instances": s["instances"], "pats": pats,
     "per_token_per_instance": s["argon2_evaluations"] / (pats * s["instances"])}
    for s in measured["scenarios"]
]
worst = max(r["per_token_per_instance"] for r in rows)
json.dump({"argon2_per_genuine_token_per_instance": worst, "scenarios": rows}, open(sys.argv[3], "w"))
print(json.dumps(rows))
PY
}

# ---------------------------------------------------------------- the run

if [ "${1:-}" = "--step" ]; then
  "step_$2"
  exit
fi

run_step() { # NAME LIMIT INDEX COUNT
  local name=$1 limit=$2 start rc=0
  echo
  echo "== [$3/$4] $name (at most ${limit} s)"
  start=$(date +%s)
  timeout -k 10 "$limit" "$root/scripts/bench.sh" --step "$name" || rc=$?
  local secs=$(($(date +%s) - start))
  printf '%s\t%s\t%s\n' "$name" "$rc" "$secs" >>"$out/steps.tsv"
  case $rc in
    0) echo "== $name: ok in ${secs} s" ;;
    124) echo "== $name: TIMED OUT after ${secs} s" ; failed+=("$name") ;;
    *) echo "== $name: FAILED (exit $rc) after ${secs} s" ; failed+=("$name") ;;
  esac
}

failed=()
if [ $# -gt 0 ]; then
  selected=("$@")
  mkdir -p "$out"
else
  selected=()
  for s in "${STEPS[@]}"; do selected+=("${s%% *}"); done
  # Every figure comes from this run: the previous run's outputs move away.
  rm -rf "$out.prev"
  if [ -d "$out" ]; then mv "$out" "$out.prev"; fi
  mkdir -p "$out"
fi

echo "== machine: $(python3 bench/summarize.py "$out" --record-machine)"
i=0
for name in "${selected[@]}"; do
  i=$((i + 1))
  limit=
  for s in "${STEPS[@]}"; do [ "${s%% *}" = "$name" ] && limit=${s#* }; done
  [ -n "$limit" ] || { echo "unknown step: $name (steps: ${STEPS[*]%% *})" >&2; exit 2; }
  run_step "$name" "$limit" "$i" "${#selected[@]}"
done

echo
if [ $# -gt 0 ]; then
  echo "== summary (BENCHMARKS.md left alone: only some steps ran)"
  timeout 120 python3 bench/summarize.py "$out" | tee "$out/summary.md"
else
  echo "== summary into target/bench/summary.md and BENCHMARKS.md's marked tables"
  timeout 120 python3 bench/summarize.py "$out" --write BENCHMARKS.md | tee "$out/summary.md"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "== steps that failed or timed out: ${failed[*]} (their tables say \"not measured in this run\")" >&2
  exit 1
fi
