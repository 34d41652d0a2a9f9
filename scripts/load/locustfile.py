"""Load scenario of an agpat-protected API (the items example), run by
scripts/load-test.sh against the local gateway or a deployed stage.

Every request has an expected outcome, and the scenario checks it:
  allow (2xx), 401 (unauthenticated), 403 (refused by the policy or the
  gateway), and for a revoked PAT "401, or allow while the revocation bound
  has not passed since it was revoked".
A *wrong decision* is an allow where a 401/403 was expected, a 401/403 where
an allow was expected, or a 401 where a 403 was expected (or the reverse).
Any 5xx, any wrong decision, or a breached threshold makes the run fail.

The mix, per simulated user (several PATs with different scopes, the JWT):
  PAT items:read                GET /items, GET /items/{id} (200); POST, PUT (403)
  PAT items:read items:write    POST, GET, PUT, DELETE /items/{id} (201/200/200/204)
  PAT tokens:read               GET /tokens (200); GET /items (403)
  JWT (LOAD_JWT)                GET /items, GET /me, GET /tokens (200)
  no credential / junk          GET /items (401); an undeclared route (404, the
                                construct's problem+json gateway response)
  lifecycle                     POST /tokens, use it, revoke it with
                                DELETE /tokens/{id} (JWT) or the public
                                POST /tokens/revoke, then keep probing it.

Environment: LOAD_HOST (set by load-test.sh as --host), LOAD_JWT (required),
LOAD_REVOCATION_BOUND_SECONDS (default 100 = 60 + 30 + 10),
LOAD_P99_MS, LOAD_MAX_ERROR_RATE (default 0.01), LOAD_MAX_REQUESTS (20000),
LOAD_LIFECYCLES_PER_USER (4), LOAD_FINAL_REVOCATION_CHECK (1: after the run,
wait until the bound has passed for the last revocation, then check that every
revoked PAT is refused; 0 skips it). Tokens are never printed.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter

import requests
from locust import HttpUser, between, events, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

JWT = os.environ.get("LOAD_JWT", "")
BOUND = float(os.environ.get("LOAD_REVOCATION_BOUND_SECONDS", "100"))
P99_MS = float(os.environ["LOAD_P99_MS"]) if os.environ.get("LOAD_P99_MS") else None
MAX_ERROR_RATE = float(os.environ.get("LOAD_MAX_ERROR_RATE", "0.01"))
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "20000"))
LIFECYCLES_PER_USER = int(os.environ.get("LOAD_LIFECYCLES_PER_USER", "4"))
# At the end, wait out the bound (at most BOUND seconds) and probe every PAT
# revoked during the run once more: each must be refused.
FINAL_CHECK = os.environ.get("LOAD_FINAL_REVOCATION_CHECK", "1") != "0"
RUN = uuid.uuid4().hex[:8]

ALLOW = "allow"
DECISIONS = {ALLOW, "401", "403"}


class Ledger:
    """What was expected and what came back (gevent: one thread, no locks)."""

    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.wrong: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.server_errors = 0
        self.no_answer = 0
        self.interrupted = 0
        self.total = 0
        self.past_bound_probes = 0
        self.within_bound_allowed = 0
        self.created: list[str] = []  # token ids to clean up
        self.revoked: list[tuple[str, float, str]] = []  # (secret, monotonic time, how)
        self.final_probes = 0
        self.lifecycles = 0  # across users: revocations alternate between the two ways

    def judge(self, name: str, expected: str, status: int, tolerated: tuple[str, ...] = ()) -> str | None:
        """Records one answer; returns why it is a failure, or None."""
        actual = outcome(status)
        self.total += 1
        self.outcomes[(expected, actual)] += 1
        if actual == expected or actual in tolerated:
            return None
        if actual == "5xx":
            self.server_errors += 1
            return f"server error {status}"
        if actual == "no answer":
            self.no_answer += 1
            return "no answer (connection failed or timed out)"
        if expected in DECISIONS and actual in DECISIONS:
            self.wrong[f"{name}: expected {expected}, got {actual}"] += 1
            return f"WRONG DECISION: expected {expected}, got {actual}"
        self.unexpected[f"{name}: expected {expected}, got {status}"] += 1
        return f"unexpected status {status} (expected {expected})"


LEDGER = Ledger()


def outcome(status: int) -> str:
    if 200 <= status < 300:
        return ALLOW
    if status in (401, 403):
        return str(status)
    if status >= 500:
        return "5xx"
    if status == 0:
        return "no answer"
    return str(status)


class ApiUser(HttpUser):
    """One client of the API: its PATs, its JWT, its items."""

    wait_time = between(0.02, 0.1)

    def on_start(self) -> None:
        self.reader = self.new_pat("reader", ["items:read"])
        self.writer = self.new_pat("writer", ["items:read", "items:write"])
        self.tokens_reader = self.new_pat("tokens-reader", ["tokens:read"])
        self.items: list[dict] = []
        self.lifecycles = 0
        # One revocation at once, so that a short run probes past the bound.
        self.lifecycle()

    # -- helpers -----------------------------------------------------------

    def call(self, name: str, method: str, path: str, expected: str, *, token: str | None = None,
             tolerated: tuple[str, ...] = (), **kwargs):
        if LEDGER.total >= MAX_REQUESTS:
            self.environment.runner.quit()
            return None
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        with self.client.request(method, path, name=name, headers=headers, catch_response=True,
                                 **kwargs) as response:
            stopping = self.environment.runner.state in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP)
            if response.status_code == 0 and stopping:
                # Cut off by the end of the run, not by the API.
                LEDGER.interrupted += 1
                response.success()
                return None
            why = LEDGER.judge(name, expected, response.status_code, tolerated)
            if why:
                response.failure(why)
            else:
                response.success()
            return response

    def new_pat(self, label: str, scopes: list[str]) -> dict | None:
        response = self.call(f"JWT POST /tokens ({label})", "POST", "/tokens", ALLOW, token=JWT,
                             json={"name": f"load {RUN} {label}", "scopes": scopes, "expiresInDays": 1})
        if response is None or response.status_code != 201:
            return None
        body = response.json()
        LEDGER.created.append(body["id"])
        return {"id": body["id"], "secret": body["token"]}

    def some_item(self) -> dict | None:
        return random.choice(self.items) if self.items else None

    # -- the mix -----------------------------------------------------------

    @task(10)
    def reader_lists_items(self) -> None:
        if self.reader:
            self.call("PAT items:read GET /items", "GET", "/items", ALLOW, token=self.reader["secret"])

    @task(4)
    def reader_reads_an_item(self) -> None:
        item = self.some_item()
        if self.reader and item:
            self.call("PAT items:read GET /items/{id}", "GET", f"/items/{item['id']}", ALLOW,
                      token=self.reader["secret"])

    @task(3)
    def reader_cannot_write(self) -> None:
        if not self.reader:
            return
        self.call("PAT items:read POST /items", "POST", "/items", "403", token=self.reader["secret"],
                  json={"name": "refused"})
        item = self.some_item()
        if item:
            self.call("PAT items:read PUT /items/{id}", "PUT", f"/items/{item['id']}", "403",
                      token=self.reader["secret"], json={"name": "refused", "version": item["version"]})

    @task(5)
    def writer_round_trip(self) -> None:
        if not self.writer:
            return
        secret = self.writer["secret"]
        created = self.call("PAT items:write POST /items", "POST", "/items", ALLOW, token=secret,
                            json={"name": f"load {RUN}", "description": "load test"})
        if created is None or created.status_code != 201:
            return
        item = created.json()
        path = f"/items/{item['id']}"
        self.call("PAT items:write GET /items/{id}", "GET", path, ALLOW, token=secret)
        updated = self.call("PAT items:write PUT /items/{id}", "PUT", path, ALLOW, token=secret,
                            json={"name": f"load {RUN} updated", "description": "",
                                  "version": item["version"]})
        if updated is not None and updated.status_code == 200:
            item = updated.json()
        if len(self.items) < 5:
            self.items.append(item)
        else:
            self.call("PAT items:write DELETE /items/{id}", "DELETE", path, ALLOW, token=secret)

    @task(2)
    def tokens_reader(self) -> None:
        if not self.tokens_reader:
            return
        secret = self.tokens_reader["secret"]
        self.call("PAT tokens:read GET /tokens", "GET", "/tokens", ALLOW, token=secret)
        self.call("PAT tokens:read GET /items", "GET", "/items", "403", token=secret)

    @task(4)
    def session(self) -> None:
        self.call("JWT GET /items", "GET", "/items", ALLOW, token=JWT)
        self.call("JWT GET /me", "GET", "/me", ALLOW, token=JWT)
        self.call("JWT GET /tokens", "GET", "/tokens", ALLOW, token=JWT)

    @task(2)
    def strangers(self) -> None:
        self.call("no credential GET /items", "GET", "/items", "401")
        junk = "agpat_" + uuid.uuid4().hex + uuid.uuid4().hex
        self.call("junk PAT GET /items", "GET", "/items", "401", token=junk)
        self.call("junk JWT GET /me", "GET", "/me", "401", token="eyJhbGciOiJub25lIn0.e30.")
        self.call("PAT GET undeclared route", "GET", f"/load-{RUN}-undeclared", "404",
                  token=self.reader["secret"] if self.reader else JWT)

    @task(1)
    def lifecycle(self) -> None:
        """Create, use and revoke a PAT (alternately by id and publicly)."""
        if self.lifecycles >= LIFECYCLES_PER_USER:
            return
        self.lifecycles += 1
        pat = self.new_pat("lifecycle", ["items:read"])
        if not pat:
            return
        self.call("lifecycle PAT GET /items", "GET", "/items", ALLOW, token=pat["secret"])
        LEDGER.lifecycles += 1
        if LEDGER.lifecycles % 2:
            response = self.call("JWT DELETE /tokens/{id}", "DELETE", f"/tokens/{pat['id']}", ALLOW,
                                 token=JWT)
            how = "DELETE /tokens/{id}"
        else:
            response = self.call("public POST /tokens/revoke", "POST", "/tokens/revoke", ALLOW,
                                 json={"token": pat["secret"]})
            how = "POST /tokens/revoke"
        if response is not None and response.status_code in (202, 204):
            LEDGER.revoked.append((pat["secret"], time.monotonic(), how))

    @task(3)
    def revoked_pats_stop_within_the_bound(self) -> None:
        if not LEDGER.revoked:
            return
        secret, revoked_at, how = random.choice(LEDGER.revoked)
        age = time.monotonic() - revoked_at
        if age <= BOUND:
            response = self.call(f"revoked PAT within the bound ({how})", "GET", "/items", "401",
                                 token=secret, tolerated=(ALLOW,))
            if response is not None and outcome(response.status_code) == ALLOW:
                LEDGER.within_bound_allowed += 1
        else:
            LEDGER.past_bound_probes += 1
            self.call(f"revoked PAT past the bound ({how})", "GET", "/items", "401", token=secret)


@events.test_start.add_listener
def _check_inputs(environment, **_kwargs) -> None:
    if not JWT:
        raise SystemExit("LOAD_JWT (a Cognito access token) is required")


def _final_revocation_check(host: str) -> None:
    """Every PAT revoked during the run is refused once the bound has passed."""
    if not FINAL_CHECK or not LEDGER.revoked:
        return
    last = max(at for _, at, _ in LEDGER.revoked)
    wait = last + BOUND - time.monotonic()
    if wait > 0:
        print(f"load: waiting {wait:.0f}s for the revocation bound to pass", flush=True)
        time.sleep(wait + 0.5)
    for secret, _, how in LEDGER.revoked:
        try:
            status = requests.get(f"{host}/items", headers={"authorization": f"Bearer {secret}"},
                                  timeout=10).status_code
        except requests.RequestException:
            status = 0
        LEDGER.final_probes += 1
        LEDGER.judge(f"revoked PAT after the run ({how})", "401", status)


@events.test_stop.add_listener
def _clean_up(environment, **_kwargs) -> None:
    """Checks the revoked PATs once more, then revokes every token the run
    created (they would count against the user's cap)."""
    host = environment.host.rstrip("/")
    _final_revocation_check(host)
    for token_id in LEDGER.created:
        try:
            status = requests.delete(f"{host}/tokens/{token_id}", headers={"authorization": f"Bearer {JWT}"},
                                     timeout=10).status_code
        except requests.RequestException:
            status = 0
        if status not in (204, 404):
            LEDGER.unexpected[f"cleanup DELETE /tokens/{{id}}: got {status}"] += 1
    LEDGER.created.clear()


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:
    stats = environment.stats.total
    p50 = stats.get_response_time_percentile(0.5) or 0
    p99 = stats.get_response_time_percentile(0.99) or 0
    transport = LEDGER.no_answer
    errors = LEDGER.server_errors + transport + sum(LEDGER.unexpected.values())
    rate = errors / LEDGER.total if LEDGER.total else 1.0
    wrong = sum(LEDGER.wrong.values())
    print("\nload: expected -> actual            count")
    for (expected, actual), count in sorted(LEDGER.outcomes.items()):
        print(f"load:   {expected:>7} -> {actual:<10} {count:>10}")
    print(f"load: {LEDGER.total} requests, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"load: 5xx {LEDGER.server_errors}, wrong decisions {wrong}, other unexpected "
          f"{sum(LEDGER.unexpected.values())} (error rate {rate:.4f}), transport errors {transport}")
    print(f"load: revoked PATs {len(LEDGER.revoked)}; allowed within the {BOUND:.0f}s bound "
          f"{LEDGER.within_bound_allowed}; probed past it {LEDGER.past_bound_probes} during the run "
          f"and {LEDGER.final_probes} after it; "
          f"cut off by the end of the run {LEDGER.interrupted}")
    for what, count in (LEDGER.wrong + LEDGER.unexpected).most_common(10):
        print(f"load:   {count} x {what}")
    failures = []
    if LEDGER.total == 0:
        failures.append("no request was made")
    if FINAL_CHECK and not LEDGER.revoked:
        failures.append("no PAT was revoked: the revocation bound was not checked")
    if LEDGER.server_errors:
        failures.append(f"{LEDGER.server_errors} server errors")
    if wrong:
        failures.append(f"{wrong} wrong decisions")
    if transport:
        failures.append(f"{transport} requests without an answer")
    if rate > MAX_ERROR_RATE:
        failures.append(f"error rate {rate:.4f} > LOAD_MAX_ERROR_RATE {MAX_ERROR_RATE}")
    if P99_MS is not None and p99 > P99_MS:
        failures.append(f"p99 {p99:.0f} ms > LOAD_P99_MS {P99_MS:.0f}")
    if failures:
        print("load: FAILED: " + "; ".join(failures))
        environment.process_exit_code = 1
    else:
        print("load: passed")
        environment.process_exit_code = 0
