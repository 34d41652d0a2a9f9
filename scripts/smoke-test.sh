#!/usr/bin/env bash
# Smoke test of a deployed (or local) stack: log in to the user pool, create a
# PAT, call an item route with it, revoke it, and check that it is refused
# within the revocation bound.
#
# Required: API_URL, USER_POOL_CLIENT_ID, SMOKE_USERNAME, SMOKE_PASSWORD.
# Optional: AWS_REGION (us-east-1), COGNITO_ENDPOINT (AWS's regional endpoint),
# REVOCATION_BOUND_SECONDS (authorizer cache TTL + PAT cache TTL + 10 = 100).
set -euo pipefail
: "${API_URL:?}" "${USER_POOL_CLIENT_ID:?}" "${SMOKE_USERNAME:?}" "${SMOKE_PASSWORD:?}"
region="${AWS_REGION:-us-east-1}"
cognito="${COGNITO_ENDPOINT:-https://cognito-idp.$region.amazonaws.com/}"
bound="${REVOCATION_BOUND_SECONDS:-100}"
api="${API_URL%/}"
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

echo "smoke: logging in as $SMOKE_USERNAME"
jwt=$(curl -sf -X POST "$cognito" \
  -H 'content-type: application/x-amz-json-1.1' \
  -H 'x-amz-target: AWSCognitoIdentityProviderService.InitiateAuth' \
  -d "{\"AuthFlow\":\"USER_PASSWORD_AUTH\",\"ClientId\":\"$USER_POOL_CLIENT_ID\",\"AuthParameters\":{\"USERNAME\":\"$SMOKE_USERNAME\",\"PASSWORD\":\"$SMOKE_PASSWORD\"}}" |
  json "['AuthenticationResult']['AccessToken']")

echo "smoke: creating a PAT"
created=$(curl -sf -X POST "$api/tokens" -H "authorization: Bearer $jwt" -H 'content-type: application/json' \
  -d '{"name":"smoke test","scopes":["items:read","items:write"],"expiresInDays":1}')
pat=$(printf '%s' "$created" | json "['token']")
id=$(printf '%s' "$created" | json "['id']")

echo "smoke: calling /items with the PAT"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$api/items" -H "authorization: Bearer $pat" \
  -H 'content-type: application/json' -d '{"name":"smoke"}')
[ "$code" = 201 ] || { echo "smoke: POST /items answered $code" >&2; exit 1; }

echo "smoke: revoking token $id"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$api/tokens/$id" -H "authorization: Bearer $jwt")
[ "$code" = 204 ] || { echo "smoke: DELETE /tokens/$id answered $code" >&2; exit 1; }

start=$(date +%s)
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$api/items" -H "authorization: Bearer $pat")
  elapsed=$(( $(date +%s) - start ))
  if [ "$code" = 401 ]; then
    echo "smoke: revoked PAT refused after ${elapsed}s (bound ${bound}s)"
    break
  fi
  if [ "$elapsed" -gt "$bound" ]; then
    echo "smoke: revoked PAT still answered $code after ${elapsed}s" >&2
    exit 1
  fi
  sleep 1
done
echo "smoke: 1 passed, 0 failed"
