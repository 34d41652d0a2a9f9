#!/usr/bin/env bash
# Load scenario (Locust, scripts/load/locustfile.py) against the local gateway
# or a deployed stage: PATs with different scopes, the JWT, in- and
# out-of-scope calls, unauthenticated calls, and tokens created and revoked
# mid-run (by id and through the public POST /tokens/revoke). Every answer is
# checked against what the scenario expects.
#
# Required: LOAD_HOST (base URL), LOAD_JWT (a Cognito access token allowed
#   items:read items:write tokens:read tokens:write).
# Optional: LOAD_USERS (5), LOAD_SECONDS (15), LOAD_P99_MS, LOAD_MAX_ERROR_RATE
#   (0.01), LOAD_REVOCATION_BOUND_SECONDS (100 = gateway TTL + in-process TTL
#   + slack), LOAD_MAX_REQUESTS (20000), LOAD_LIFECYCLES_PER_USER (4),
#   LOAD_FINAL_REVOCATION_CHECK (1: after the run, wait out the bound for the
#   last revocation and check that every PAT revoked during the run is refused).
#
# Exits non-zero on any 5xx, any wrong decision (an allow that should be a
# 401/403 or the reverse, a revoked PAT past the bound included), a request
# without an answer, or a breached threshold. Prints counts by expected and
# actual outcome, and p50/p99. Plain http:// is accepted on loopback only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${LOAD_HOST:?LOAD_HOST (the API base URL) is required}" "${LOAD_JWT:?LOAD_JWT (a Cognito access token) is required}"
host="${LOAD_HOST%/}"
users="${LOAD_USERS:-5}"
seconds="${LOAD_SECONDS:-15}"
bound="${LOAD_REVOCATION_BOUND_SECONDS:-100}"
for n in "$users" "$seconds" "$bound"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    echo "load: LOAD_USERS, LOAD_SECONDS and LOAD_REVOCATION_BOUND_SECONDS must be positive integers" >&2
    exit 2
  }
done
[ "$users" -le 200 ] && [ "$seconds" -le 1800 ] && [ "$bound" -le 7300 ] ||
  { echo "load: at most 200 users, 1800 seconds and a 7300 s bound" >&2; exit 2; }
# Tokens go only to https, or to plain http on loopback, and never to a URL
# with user info (http://127.0.0.1:1@elsewhere is elsewhere).
python3 - "$host" <<'PY' || { echo "load: LOAD_HOST must be https://, or http:// on loopback, without user info" >&2; exit 2; }
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
loopback = u.hostname in ("127.0.0.1", "localhost", "::1")
ok = u.username is None and u.password is None and bool(u.hostname) and (
    u.scheme == "https" or (u.scheme == "http" and loopback))
sys.exit(0 if ok else 1)
PY

"$root/scripts/ensure-venv.sh"
export PYTHONDONTWRITEBYTECODE=1
echo "load: $users users for ${seconds}s against $host"
# --stop-timeout lets the users finish their task; the hard timeout bounds the
# whole run (and the final wait for the revocation bound) whatever happens.
exec timeout --kill-after=10 $((seconds + bound + 180)) "$root/.venv/bin/locust" \
  -f "$root/scripts/load/locustfile.py" --headless --only-summary \
  --host "$host" -u "$users" -r "$users" -t "${seconds}s" --stop-timeout 5 \
  --loglevel WARNING
