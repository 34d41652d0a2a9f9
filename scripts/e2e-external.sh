#!/usr/bin/env bash
# External end-to-end checks against a real `items-dev dev` (the local gateway
# serving the items example) on loopback
# (run under scripts/with-moto.sh, which provides DYNAMODB_ENDPOINT):
#   1. headless Chromium loads /docs and finds the /tokens and /items operations
#      (screenshot kept in target/e2e-artifacts/docs.png);
#   2. the deployment smoke test (scripts/smoke-test.sh) passes against it;
#   3. the load scenario (scripts/load-test.sh, smoke size: 5 users x 10 s): no
#      5xx, no wrong decision, revoked PATs refused past the bound (5 s here);
#   4. the emergency revocation lever (scripts/emergency-revoke.py) runs against
#      the gateway's loopback control plane, as a developer would on `make dev`;
#   5. schemathesis fuzzes every operation with a real Cognito token, bounded in
#      examples and time: no 5xx, no response that violates the document.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${DYNAMODB_ENDPOINT:?run under scripts/with-moto.sh}"
artifacts="$root/target/e2e-artifacts"
mkdir -p "$artifacts"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "e2e: installing Debian's chromium"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "e2e: chromium is missing (apt-get install chromium)" >&2
    exit 1
  fi
fi

cargo build -q -p items-api --bin items-dev
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
(
  cd "$work"
  TABLE_NAME="e2e-$port" ITEMS_TABLE_NAME="e2e-items-$port" GATEWAY_ADDR="127.0.0.1:$port" RUST_LOG=warn \
    AUTHORIZER_CACHE_TTL_SECONDS=1 PAT_CACHE_TTL_SECONDS=1 \
    exec "$root/target/debug/items-dev" dev
) >"$work/gateway.log" 2>&1 &
gw_pid=$!
cleanup() { kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 300); do
  grep -q "running at" "$work/gateway.log" && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gateway.log" >&2; echo "gateway failed to start" >&2; exit 1; }
  sleep 0.2
done
grep -q "running at" "$work/gateway.log" || { echo "gateway did not start" >&2; exit 1; }

passed=0
failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "e2e FAILED: $*" >&2; fi; }

chrome() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --virtual-time-budget=15000 "$@" 2>/dev/null
}
docs_show_operations() {
  chrome --dump-dom "$base/docs/" >"$work/dom.html" || return 1
  grep -q 'data-path="/tokens/{id}/rotate"' "$work/dom.html" &&
    grep -q 'data-path="/items/{id}"' "$work/dom.html" &&
    grep -q 'data-path="/tokens/revoke"' "$work/dom.html"
}
docs_screenshot() {
  chrome --window-size=1280,2400 --screenshot="$artifacts/docs.png" "$base/docs/" && test -s "$artifacts/docs.png"
}
check docs_show_operations
check docs_screenshot

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

jwt=$(cd "$work" && "$root/target/debug/items-dev" token)
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
schemathesis() {
  timeout 600 "$root/.venv/bin/st" run "$base/openapi.json" --url "$base" \
    --header "Authorization: Bearer $jwt" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples 15 --seed 20261126 --request-timeout 10 --no-color
}
check schemathesis

echo "e2e-external: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
