#!/usr/bin/env python3
"""The API explorer (/docs) driven in a real browser, the way a person uses it.

Headless Chromium (Debian's, through Playwright; Playwright never downloads a
browser here) opens /docs/ and:
  1. finds the /tokens/{id}/rotate, /items/{id} and /tokens/revoke operations;
  2. finds no operation summary that renders with a raw backtick;
  3. clicks Authorize, pastes a Cognito access token into the JWT scheme,
     applies it and closes the dialog; expands POST /tokens, clicks
     "Try it out", enters a body, clicks Execute, and sees the 201 response
     with the once-shown secret (an agpat_ PAT with a valid checksum);
  4. that secret really works: GET /tokens/self with it answers 200 with the
     same token id and name.
A screenshot of the page (response body and curl command masked, as they hold
the secret and the JWT) is kept in target/e2e-artifacts/docs.png.

Usage: docs_browser.py --base http://127.0.0.1:PORT [--screenshot PATH]
The Cognito access token comes from the environment (E2E_JWT), never argv.
Neither the JWT nor the issued secret is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# agpat_<id: 17><secret: 43><checksum: 6>, as in shared/src/pat.rs.
PAT_RE = re.compile(r"\bagpat_([0-9A-Za-z]{17})([0-9A-Za-z]{43})([0-9A-Za-z]{6})\b")
TOKEN_NAME = "browser"
# tokens:read lets the issued PAT inspect itself (GET /tokens/self).
BODY = {"name": TOKEN_NAME, "scopes": ["items:read", "tokens:read"], "expiresInDays": 7}
LISTED_PATHS = ("/tokens/{id}/rotate", "/items/{id}", "/tokens/revoke")
# Generous for a cold debug build on two cores; every wait is bounded.
TIMEOUT_MS = 30_000


def checksum_is_valid(pat: str) -> bool:
    """CRC32 (IEEE) of everything before the checksum, 6 base62 digits."""
    body, digits = pat[:-6], pat[-6:]
    value = zlib.crc32(body.encode())
    want = ""
    for _ in range(6):
        want = BASE62[value % 62] + want
        value //= 62
    return digits == want


class Checks:
    """Counts named checks; a failing check is reported and the run goes on."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        try:
            problem = check()
        except Exception as e:  # noqa: BLE001 - any failure is this check's failure
            problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if problem is None:
            self.passed += 1
            print(f"docs-browser: ok   {name}")
        else:
            self.failed += 1
            print(f"docs-browser: FAIL {name}: {problem}", file=sys.stderr)


def operations_are_listed(page: Page) -> str | None:
    missing = [
        p for p in LISTED_PATHS if page.locator(f'.opblock-summary-path[data-path="{p}"]').count() == 0
    ]
    return f"operations not listed: {missing}" if missing else None


def summaries_have_no_backticks(page: Page) -> str | None:
    summaries = page.locator(".opblock-summary-description").all_inner_texts()
    if not summaries:
        return "no operation summary rendered"
    raw = [s for s in summaries if "`" in s]
    if raw:
        return f"{len(raw)} of {len(summaries)} summaries show a raw backtick, e.g. {raw[0]!r}"
    return None


def authorize(page: Page, jwt: str) -> None:
    """Authorize → the cognitoJwt scheme's value → Authorize → Close."""
    page.get_by_role("button", name="Authorize").first.click()
    scheme = page.locator(".auth-container").filter(has_text="cognitoJwt")
    scheme.get_by_label("auth-bearer-value").fill(jwt)
    scheme.get_by_role("button", name="Apply credentials").click()
    # Swagger UI swaps the form for the applied state.
    scheme.get_by_role("heading", name="Authorized").wait_for()
    scheme.get_by_role("button", name="Close").click()
    page.locator(".modal-ux").wait_for(state="detached")


def issue_token_in_explorer(page: Page) -> tuple[str | None, str | None]:
    """Try it out on POST /tokens; returns (problem, the issued PAT)."""
    op = page.locator(".opblock.opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/tokens"]')
    )
    if op.count() != 1:
        return f"expected one POST /tokens operation, found {op.count()}", None
    op.locator(".opblock-summary").first.click()
    op.get_by_role("button", name="Try it out").click()
    op.locator("textarea.body-param__text").fill(json.dumps(BODY))
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table .response")
    live.first.wait_for()
    status = live.locator(".response-col_status").first.inner_text().strip()
    body = live.locator(".response-col_description").first.inner_text()
    if status != "201":
        return f"POST /tokens answered {status}, expected 201", None
    found = PAT_RE.search(body)
    if found is None:
        return "the 201 response on the page shows no agpat_ secret", None
    pat = found.group(0)
    if not checksum_is_valid(pat):
        return "the secret on the page has a bad checksum", None
    return None, pat


def token_works(base: str, pat: str) -> str | None:
    """GET /tokens/self with the secret copied from the page."""
    req = urllib.request.Request(f"{base}/tokens/self", headers={"Authorization": f"Bearer {pat}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, view = resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return f"GET /tokens/self with the issued secret answered {e.code}"
    token_id = PAT_RE.fullmatch(pat).group(1)  # type: ignore[union-attr]
    if status != 200 or view.get("id") != token_id or view.get("name") != TOKEN_NAME:
        return f"GET /tokens/self answered {status} for another token (name {view.get('name')!r})"
    if sorted(view.get("scopes") or []) != sorted(BODY["scopes"]):
        return f"the issued token has scopes {view.get('scopes')}, expected {BODY['scopes']}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the gateway, http://127.0.0.1:PORT")
    parser.add_argument("--screenshot", type=Path, default=Path("target/e2e-artifacts/docs.png"))
    args = parser.parse_args()
    jwt = os.environ.get("E2E_JWT", "")
    if not jwt:
        print("docs-browser: E2E_JWT (a Cognito access token) is required", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium")
    if chromium is None:
        print("docs-browser: Debian's chromium is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    base = args.base.rstrip("/")
    checks = Checks()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            # Running as root in CI needs --no-sandbox; the rest keeps the
            # browser's traffic on loopback (no updates, sync or QUIC probes).
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-quic", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/docs/")
        page.locator(".opblock").first.wait_for()

        checks.run("operations /tokens/{id}/rotate, /items/{id}, /tokens/revoke are listed",
                   lambda: operations_are_listed(page))
        checks.run("no operation summary renders a raw backtick", lambda: summaries_have_no_backticks(page))

        issued: list[str] = []

        def try_it_out() -> str | None:
            authorize(page, jwt)
            problem, pat = issue_token_in_explorer(page)
            if pat is not None:
                issued.append(pat)
            return problem

        checks.run("Authorize + Try it out on POST /tokens shows 201 and the secret", try_it_out)
        checks.run(
            "the secret shown works: GET /tokens/self answers 200 for it",
            lambda: token_works(base, issued[0]) if issued else "no secret was issued",
        )

        def screenshot() -> str | None:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            # The response body holds the secret and the curl command the JWT.
            secret_bearing = [
                page.locator(".live-responses-table .response-col_description"),
                page.locator(".curl-command"),
            ]
            page.screenshot(path=str(args.screenshot), full_page=True, mask=secret_bearing)
            return None if args.screenshot.stat().st_size > 0 else "empty screenshot"

        checks.run(f"screenshot saved to {args.screenshot}", screenshot)
        browser.close()
    print(f"docs-browser: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
