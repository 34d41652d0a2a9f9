#!/usr/bin/env bash
# External end-to-end checks against a real `items-dev dev` (the local gateway
# serving the items example) on loopback
# (run under scripts/with-moto.sh, which provides DYNAMODB_ENDPOINT):
#   1. a person's use of /docs in headless Chromium (scripts/e2e/docs_browser.py,
#      Playwright on Debian's chromium): the operations are listed, no summary
#      shows a raw backtick, Authorize with a JWT + "Try it out" on POST /tokens
#      shows the 201 and a working secret (screenshot in target/e2e-artifacts/docs.png);
#   1b. `make dev` (scripts/dev.sh) in a scratch directory shows each bootstrap
#      step and cargo's own output, then serves /docs; `make test`'s phase
#      runner (scripts/phases.sh) announces and times each phase;
#   2. the deployment smoke test (scripts/smoke-test.sh) passes against it;
#   3. the load scenario (scripts/load-test.sh, smoke size: 5 users x 10 s): no
#      5xx, no wrong decision, revoked PATs refused past the bound (5 s here);
#   4. the emergency revocation lever (scripts/emergency-revoke.py) runs against
#      the gateway's loopback control plane, as a developer would on `make dev`;
#   5. the administrators' routes answer the administrator `make dev` creates,
#      and refuse the demo user;
#   6. schemathesis fuzzes every operation with the administrator's Cognito
#      token, bounded in examples and time: no 5xx, no response that violates
#      the document.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${DYNAMODB_ENDPOINT:?run under scripts/with-moto.sh}"
artifacts="$root/target/e2e-artifacts"
mkdir -p "$artifacts"

# Playwright drives this chromium by its path; it never downloads a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "e2e: installing Debian's chromium"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "e2e: chromium is missing (apt-get install chromium)" >&2
    exit 1
  fi
fi

echo "e2e: cargo build -p items-api --bin items-dev"
CARGO_TERM_PROGRESS_WHEN="${CARGO_TERM_PROGRESS_WHEN:-auto}" cargo build -p items-api --bin items-dev
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
(
  cd "$work"
  TABLE_NAME="e2e-$port" ITEMS_TABLE_NAME="e2e-items-$port" GATEWAY_ADDR="127.0.0.1:$port" RUST_LOG=warn \
    AUTHORIZER_CACHE_TTL_SECONDS=1 PAT_CACHE_TTL_SECONDS=1 \
    exec "$root/target/debug/items-dev" dev
) >"$work/gateway.log" 2>&1 &
gw_pid=$!
dev_pid=""
cleanup() {
  kill "$gw_pid" 2>/dev/null || true
  wait "$gw_pid" 2>/dev/null || true
  # make_dev's session (dev.sh, its moto and gateway), if a stop cut it short.
  if [ -n "$dev_pid" ]; then kill -TERM -- "-$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 300); do
  grep -q "running at" "$work/gateway.log" && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; echo "gateway failed to start" >&2; exit 1; }
  sleep 0.2
done
grep -q "running at" "$work/gateway.log" || { echo "gateway did not start" >&2; exit 1; }

passed=0
failed=0
# Each step announces itself and its time: the whole suite takes minutes.
check() {
  local start=$SECONDS
  echo "==> e2e: $*"
  if "$@"; then
    passed=$((passed + 1))
    echo "<== e2e: $* passed in $((SECONDS - start))s"
  else
    failed=$((failed + 1))
    echo "e2e FAILED: $* (after $((SECONDS - start))s)" >&2
  fi
}

jwt=$(cd "$work" && "$root/target/debug/items-dev" token)
docs_browser() {
  E2E_JWT="$jwt" timeout 180 "$root/.venv/bin/python" "$root/scripts/e2e/docs_browser.py" \
    --base "$base" --screenshot "$artifacts/docs.png"
}
check docs_browser

# `make dev` as a new user runs it, in a scratch directory (its .dev/ state and
# moto log stay out of the repository) on free ports: every bootstrap step is
# announced in order, cargo's own output is not silenced, and /docs answers.
make_dev() {
  local dir="$work/make-dev" out rc=0 gw_port
  mkdir -p "$dir"
  out="$dir/out.log"
  gw_port=$(free_port)
  # Its own session (pid = process group), so that the check can stop moto
  # and the gateway together; setsid may fork, hence the pid file.
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's
  MOTO_PORT=$(free_port) GATEWAY_ADDR="127.0.0.1:$gw_port" AGPAT_DEV_DIR="$dir" RUST_LOG=warn \
    setsid --wait bash -c 'echo $$ >"$1"; exec "$2"' make-dev "$dir/pid" "$root/scripts/dev.sh" \
    >"$out" 2>&1 </dev/null &
  local waiter=$!
  for _ in $(seq 1 50); do [ -s "$dir/pid" ] && break; sleep 0.1; done
  dev_pid=$(cat "$dir/pid")
  for _ in $(seq 1 600); do
    grep -q "running at" "$out" && break
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.2
  done
  curl -sf -o /dev/null "http://127.0.0.1:$gw_port/docs/" || rc=1
  kill -TERM -- "-$dev_pid" 2>/dev/null || true
  wait "$waiter" 2>/dev/null || true
  dev_pid=""
  python3 - "$out" <<'PY' || rc=1
import re, sys
text = open(sys.argv[1]).read()
steps = [int(m) for m in re.findall(r"^\[(\d)/6\] ", text, re.M)]
problems = []
if steps != [1, 2, 3, 4, 5, 6]:
    problems.append(f"bootstrap steps shown: {steps}, expected [1..6] in order")
if not re.search(r"^\s*Finished `dev` profile", text, re.M):
    problems.append("cargo's own output (its Finished line) is not shown")
if "running at" not in text:
    problems.append("the walkthrough (running at …) never appeared")
elif text.index("[6/6]") > text.index("running at"):
    problems.append("a step was announced after the walkthrough")
for p in problems:
    print(f"make dev: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  # (the walkthrough's demo JWT stays out of the log)
  [ "$rc" -eq 0 ] || grep -v '^export JWT=' "$out" | tail -30 >&2
  return "$rc"
}
check make_dev

# `make test`'s phase runner (scripts/phases.sh) on a throwaway Makefile: each
# phase announced and timed, the run stopped at the first failure, a count line.
make_test_phases() {
  local dir="$work/phases" rc=0
  mkdir -p "$dir"
  printf 'ok:\n\t@echo ran-ok\nbad:\n\t@exit 3\nnever:\n\t@echo ran-never\n' >"$dir/Makefile"
  (cd "$dir" && MAKE="make" "$root/scripts/phases.sh" ok bad never) >"$dir/fail.log" 2>&1 && rc=1
  (cd "$dir" && MAKE="make" "$root/scripts/phases.sh" ok ok) >"$dir/pass.log" 2>&1 || rc=1
  grep -qx '==> \[1/3\] ok: make ok' "$dir/fail.log" &&
    grep -q '^<== ok passed in 0m0[0-9]s$' "$dir/fail.log" &&
    grep -q '^<== bad FAILED' "$dir/fail.log" &&
    ! grep -q 'ran-never' "$dir/fail.log" &&
    grep -qx 'phases: 1 passed, 1 failed, 1 skipped' "$dir/fail.log" &&
    grep -qx 'phases: 2 passed, 0 failed' "$dir/pass.log" || rc=1
  [ "$rc" -eq 0 ] || cat "$dir/fail.log" "$dir/pass.log" >&2
  return "$rc"
}
check make_test_phases

smoke() {
  # The deploy workflow's smoke test, as it runs on AWS: a throwaway user made
  # with Cognito admin calls (on moto), ADMIN_USER_PASSWORD_AUTH, cleaned up.
  # The local gateway trusts only its pool's one app client, so that client
  # stands in for the construct's dedicated SmokeTestClientId (moto does not
  # enforce ExplicitAuthFlows either way).
  local pool client
  read -r pool client < <(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["pool"]; print(p["pool_id"], p["client_id"])' "$work/.dev/state.json")
  API_URL="$base" USER_POOL_ID="$pool" SMOKE_CLIENT_ID="$client" COGNITO_ENDPOINT="$DYNAMODB_ENDPOINT" \
    REVOCATION_BOUND_SECONDS=10 timeout 90 "$root/scripts/smoke-test.sh"
}
check smoke

load() {
  local rc=0
  LOAD_HOST="$base" LOAD_JWT="$jwt" LOAD_USERS=5 LOAD_SECONDS=10 LOAD_REVOCATION_BOUND_SECONDS=5 \
    LOAD_MAX_ERROR_RATE=0 "$root/scripts/load-test.sh" >"$artifacts/load.log" 2>&1 || rc=$?
  grep '^load' "$artifacts/load.log" || tail -20 "$artifacts/load.log"
  return "$rc"
}
check load
emergency_lever() {
  timeout 60 "$root/.venv/bin/python" "$root/scripts/emergency-revoke.py" \
    --rest-api-id local --stage dev --function-name agpat-authorizer --region us-east-1 --poll-seconds 0.2 \
    --apigateway-endpoint-url "$base/_aws/apigateway" --lambda-endpoint-url "$base/_aws/lambda"
}
check emergency_lever
# As the administrator `make dev` creates (in agpat-admins): every operation,
# the /admin/tokens ones included, reaches the token service.
admin_jwt=$(cd "$work" && "$root/target/debug/items-dev" token admin)
# The administrator reaches the admin routes (an unknown owner is a 404 from
# the service, not a 403 from the gateway); the demo user does not.
admin_routes() {
  local as_admin as_demo
  as_admin=$(curl -s -o /dev/null -w '%{http_code}' "$base/admin/tokens?owner=nobody" -H "Authorization: Bearer $admin_jwt")
  as_demo=$(curl -s -o /dev/null -w '%{http_code}' "$base/admin/tokens?owner=nobody" -H "Authorization: Bearer $jwt")
  echo "admin_routes: administrator $as_admin (want 404), demo user $as_demo (want 403)"
  [ "$as_admin" = 404 ] && [ "$as_demo" = 403 ]
}
check admin_routes
# The DPoP client example (examples/python-dpop) against a second gateway run
# as the construct's `dpop` deploys it (AGPAT_DPOP=on: no authorizer cache):
# a bound token works with fresh proofs, and is refused as Bearer and on a replay.
dpop_client() {
  local dir="$work/dpop" port rc=0 pid session
  mkdir -p "$dir"
  port=$(free_port)
  (
    cd "$dir"
    TABLE_NAME="e2e-dpop-$port" ITEMS_TABLE_NAME="e2e-dpop-items-$port" GATEWAY_ADDR="127.0.0.1:$port" \
      RUST_LOG=warn AGPAT_DPOP=on exec "$root/target/debug/items-dev" dev
  ) >"$dir/gateway.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "running at" "$dir/gateway.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  session=$(cd "$dir" && "$root/target/debug/items-dev" token) || rc=1
  AGPAT_JWT="$session" timeout 60 "$root/.venv/bin/python" "$root/examples/python-dpop/dpop_client.py" \
    --api "http://127.0.0.1:$port" --check || rc=1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$rc" -eq 0 ] || grep -v '^export JWT=' "$dir/gateway.log" | tail -20 >&2
  return "$rc"
}
check dpop_client
schemathesis() {
  timeout 600 "$root/.venv/bin/st" run "$base/openapi.json" --url "$base" \
    --header "Authorization: Bearer $admin_jwt" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples 15 --seed 20261126 --request-timeout 10 --no-color
}
check schemathesis

echo "e2e-external: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
