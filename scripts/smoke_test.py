#!/usr/bin/env python3
"""Smoke test of a deployed (or local) agpat + items API.

It never weakens the pool it tests: no password flow on the public client,
no standing test user. With AWS credentials (the deploy role) it creates a
throwaway user (AdminCreateUser with MessageAction=SUPPRESS, a CSPRNG password
set permanent with AdminSetUserPassword), signs in with AdminInitiateAuth
ADMIN_USER_PASSWORD_AUTH on the dedicated smoke-test app client, and at the
end deletes everything it made, also after a failure: its items, its PATs
(revoked), the user.

Checks, in order:
  1. a Cognito access token (JWT) calls GET /items;
  2. POST /tokens issues a PAT with items:read items:write;
  3. that PAT calls POST /items and GET /items/{id};
  4. a PAT with only items:read gets 403 on POST /items (and 200 on GET /items);
  5. POST /tokens/revoke with that PAT in the body answers 202 (public route);
  6. DELETE /tokens/{id} of the first PAT answers 204;
  7. both revoked PATs are refused (401) within the revocation bound.

Usage:
  smoke_test.py [--stack NAME]                   run the checks
  smoke_test.py [--stack NAME] with-user -- CMD  run CMD with LOAD_HOST and
      LOAD_JWT (a throwaway user's access token) set, then delete the user

Settings: with --stack, the CloudFormation outputs ApiUrl, UserPoolId and
SmokeTestClientId; else the environment's API_URL, USER_POOL_ID and
SMOKE_CLIENT_ID. Optional: AWS_REGION, COGNITO_ENDPOINT (moto),
REVOCATION_BOUND_SECONDS (default 100 = authorizer cache 60 + PAT cache 30
+ 10). Tokens and passwords are never printed; on GitHub Actions they are
also masked.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import boto3


class SmokeFailure(Exception):
    """A check did not hold; the message never contains a secret."""


def mask(value: str) -> None:
    """Asks GitHub Actions to hide `value` from the log from now on."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::add-mask::{value}", flush=True)


@dataclass
class Settings:
    api: str
    pool_id: str
    client_id: str
    region: str
    cognito_endpoint: str | None
    bound: int


def settings(stack: str | None) -> Settings:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if stack:
        cfn = boto3.client("cloudformation", region_name=region)
        outputs = {
            o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        }
        missing = [k for k in ("ApiUrl", "UserPoolId", "SmokeTestClientId") if k not in outputs]
        if missing:
            raise SmokeFailure(f"stack {stack} has no output {', '.join(missing)}")
        api, pool, client = outputs["ApiUrl"], outputs["UserPoolId"], outputs["SmokeTestClientId"]
    else:
        missing = [k for k in ("API_URL", "USER_POOL_ID", "SMOKE_CLIENT_ID") if not os.environ.get(k)]
        if missing:
            raise SmokeFailure(f"set {', '.join(missing)} (or pass --stack)")
        api, pool, client = os.environ["API_URL"], os.environ["USER_POOL_ID"], os.environ["SMOKE_CLIENT_ID"]
    check_target(api)
    return Settings(
        api=api.rstrip("/"),
        pool_id=pool,
        client_id=client,
        region=region,
        cognito_endpoint=os.environ.get("COGNITO_ENDPOINT") or None,
        bound=int(os.environ.get("REVOCATION_BOUND_SECONDS", "100")),
    )


def check_target(url: str) -> None:
    """Tokens go only to https, or to plain http on loopback; never to a URL
    with user info (`http://127.0.0.1:1@elsewhere` is elsewhere)."""
    u = urllib.parse.urlsplit(url)
    loopback = u.hostname in ("127.0.0.1", "localhost", "::1")
    if u.username is not None or u.password is not None or not u.hostname:
        raise SmokeFailure("the API URL must not carry user info")
    if not (u.scheme == "https" or (u.scheme == "http" and loopback)):
        raise SmokeFailure("the API URL must be https://, or http:// on loopback")


@dataclass
class Response:
    status: int
    body: object


def call(s: Settings, method: str, path: str, token: str | None = None, body: object = None) -> Response:
    """One request; the body is parsed JSON (or None). Never raises on a status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(s.api + path, data=data, method=method)
    if token is not None:
        req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (the API under test)
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Response(status, parsed)


def expect(r: Response, status: int, what: str) -> Response:
    if r.status != status:
        # Only a problem document's title is shown: a body may hold a secret.
        title = r.body.get("title") if isinstance(r.body, dict) else None
        raise SmokeFailure(f"{what}: expected {status}, got {r.status}" + (f" ({title})" if title else ""))
    return r


@dataclass
class Session:
    """Everything the run created, so that cleanup can undo it."""

    s: Settings
    cognito: object
    username: str | None = None
    jwt: str | None = None
    token_ids: list = field(default_factory=list)
    item_ids: list = field(default_factory=list)

    def create_user(self) -> None:
        self.username = f"agpat-smoke-{secrets.token_hex(8)}"
        # 256 bits from the CSPRNG, plus one of each class the pool's policy requires.
        password = secrets.token_urlsafe(32) + "Aa1!"
        mask(password)
        self.cognito.admin_create_user(UserPoolId=self.s.pool_id, Username=self.username, MessageAction="SUPPRESS")
        self.cognito.admin_set_user_password(
            UserPoolId=self.s.pool_id, Username=self.username, Password=password, Permanent=True
        )
        auth = self.cognito.admin_initiate_auth(
            UserPoolId=self.s.pool_id,
            ClientId=self.s.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": self.username, "PASSWORD": password},
        )
        result = auth.get("AuthenticationResult")
        if not result:
            raise SmokeFailure(f"AdminInitiateAuth answered a challenge ({auth.get('ChallengeName')}), not tokens")
        self.jwt = result["AccessToken"]
        mask(self.jwt)

    def create_pat(self, name: str, scopes: list) -> tuple[str, str]:
        r = expect(
            call(self.s, "POST", "/tokens", self.jwt, {"name": name, "scopes": scopes, "expiresInDays": 1}),
            201,
            f"POST /tokens {scopes}",
        )
        pat, token_id = r.body["token"], r.body["id"]
        mask(pat)
        self.token_ids.append(token_id)
        return pat, token_id

    def cleanup(self) -> list:
        """Undoes everything; returns what could not be undone (never raises)."""
        problems = []
        if self.jwt:
            for item in self.item_ids:
                status = call(self.s, "DELETE", f"/items/{item}", self.jwt).status
                if status not in (204, 404):
                    problems.append(f"DELETE /items/{item} answered {status}")
            for token_id in self.token_ids:
                status = call(self.s, "DELETE", f"/tokens/{token_id}", self.jwt).status
                if status not in (204, 404):
                    problems.append(f"DELETE /tokens/{token_id} answered {status}")
        if self.username:
            try:
                self.cognito.admin_delete_user(UserPoolId=self.s.pool_id, Username=self.username)
            except Exception as e:  # noqa: BLE001 (reported, and the run fails)
                problems.append(f"AdminDeleteUser {self.username}: {type(e).__name__}")
        return problems


def refused_within_bound(s: Settings, pats: dict) -> None:
    """Polls GET /items with each revoked PAT until 401; `pats` maps a label to (pat, revoked_at)."""
    waiting = dict(pats)
    while waiting:
        for label, (pat, revoked_at) in list(waiting.items()):
            status = call(s, "GET", "/items", pat).status
            elapsed = time.monotonic() - revoked_at
            if status == 401:
                print(f"smoke:   {label}: refused after {elapsed:.0f}s (bound {s.bound}s)")
                del waiting[label]
            elif elapsed > s.bound:
                raise SmokeFailure(f"{label}: still answered {status} after {elapsed:.0f}s (bound {s.bound}s)")
        if waiting:
            time.sleep(1)


def run_checks(session: Session, public_revoke_check: bool = True) -> tuple[int, int]:
    s = session.s
    passed = 0
    state: dict = {}

    def jwt_call():
        expect(call(s, "GET", "/items", session.jwt), 200, "GET /items with the JWT")

    def create_pat():
        state["rw"] = session.create_pat("smoke test read-write", ["items:read", "items:write"])

    def pat_call():
        pat = state["rw"][0]
        r = expect(call(s, "POST", "/items", pat, {"name": "smoke"}), 201, "POST /items with the PAT")
        session.item_ids.append(r.body["id"])
        expect(call(s, "GET", f"/items/{r.body['id']}", pat), 200, "GET /items/{id} with the PAT")

    def out_of_scope():
        state["ro"] = session.create_pat("smoke test read-only", ["items:read"])
        pat = state["ro"][0]
        expect(call(s, "GET", "/items", pat), 200, "GET /items with the items:read PAT")
        r = call(s, "POST", "/items", pat, {"name": "must not exist"})
        if r.status == 201 and isinstance(r.body, dict) and "id" in r.body:
            session.item_ids.append(r.body["id"])
        expect(r, 403, "POST /items with the items:read PAT")

    def public_revoke():
        if not public_revoke_check:
            # A leak report pages (LeakedTokenReported): production's smoke
            # test revokes by id instead.
            expect(call(s, "DELETE", f"/tokens/{state['ro'][1]}", session.jwt), 204, "DELETE /tokens/{id}")
            state["revoked"] = {"read-only PAT revoked by DELETE /tokens/{id}": (state["ro"][0], time.monotonic())}
            return
        expect(call(s, "POST", "/tokens/revoke", None, {"token": state["ro"][0]}), 202, "POST /tokens/revoke")
        state["revoked"] = {"PAT revoked by POST /tokens/revoke": (state["ro"][0], time.monotonic())}

    def delete_revoke():
        expect(call(s, "DELETE", f"/tokens/{state['rw'][1]}", session.jwt), 204, "DELETE /tokens/{id}")
        state["revoked"]["PAT revoked by DELETE /tokens/{id}"] = (state["rw"][0], time.monotonic())

    def refused():
        refused_within_bound(s, state["revoked"])

    checks = [
        ("a JWT calls GET /items", jwt_call),
        ("POST /tokens issues a PAT", create_pat),
        ("the PAT calls POST /items and GET /items/{id}", pat_call),
        ("an items:read PAT gets 403 on POST /items", out_of_scope),
        ("POST /tokens/revoke (public) accepts the PAT", public_revoke),
        ("DELETE /tokens/{id} revokes the other PAT", delete_revoke),
        ("both revoked PATs are refused within the bound", refused),
    ]
    for i, (name, check) in enumerate(checks):
        try:
            check()
        except (SmokeFailure, KeyError, TypeError, OSError) as e:
            detail = str(e) if isinstance(e, SmokeFailure) else f"{type(e).__name__} (unexpected response)"
            print(f"smoke: FAIL {name}: {detail}", file=sys.stderr)
            # Later checks build on this one.
            skipped = len(checks) - i - 1
            if skipped:
                print(f"smoke: {skipped} later checks not run", file=sys.stderr)
            return passed, 1 + skipped
        passed += 1
        print(f"smoke: PASS {name}")
    return passed, 0


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", help="read ApiUrl, UserPoolId and SmokeTestClientId from this stack's outputs")
    parser.add_argument(
        "--no-public-revoke",
        action="store_true",
        help="revoke by id instead of POST /tokens/revoke, which pages as a leak report (production)",
    )
    parser.add_argument("mode", nargs="?", choices=["with-user"], help="run a command as a throwaway user")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        s = settings(args.stack)
    except SmokeFailure as e:
        print(f"smoke: {e}", file=sys.stderr)
        return 2
    cognito = boto3.client("cognito-idp", region_name=s.region, endpoint_url=s.cognito_endpoint)
    session = Session(s, cognito)
    print(f"smoke: {s.api} (pool {s.pool_id}, revocation bound {s.bound}s)")
    passed = failed = 0
    code = 0
    try:
        try:
            session.create_user()
            print("smoke: PASS a throwaway user signs in with ADMIN_USER_PASSWORD_AUTH")
            passed += 1
        except Exception as e:  # noqa: BLE001 (boto errors name no secret)
            print(f"smoke: FAIL a throwaway user signs in: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
        if failed == 0:
            if args.mode == "with-user":
                command = args.command[1:] if args.command[:1] == ["--"] else args.command
                if not command:
                    print("smoke: with-user needs a command after --", file=sys.stderr)
                    return 2
                # The command gets the API and a token, never the AWS
                # credentials this script used for its admin calls.
                env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
                env.update(LOAD_HOST=s.api, LOAD_JWT=session.jwt)
                code = subprocess.call(command, env=env)
                print(f"smoke: {' '.join(command)} exited {code}")
            else:
                p, f = run_checks(session, public_revoke_check=not args.no_public_revoke)
                passed, failed = passed + p, failed + f
    finally:
        problems = session.cleanup()
        for problem in problems:
            print(f"smoke: FAIL cleanup: {problem}", file=sys.stderr)
        if not problems:
            print("smoke: cleanup removed the user, its items and its PATs")
        failed += len(problems)
        passed += 0 if problems else 1
    print(f"smoke: {passed} passed, {failed} failed")
    return code or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
