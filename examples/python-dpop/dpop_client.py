"""Call an agpat-protected API with a DPoP-bound personal access token.

A bound token (RFC 9449) is useless without its private key: every request
carries `Authorization: DPoP <token>` and a fresh `DPoP` proof, a small JWS
signed with the key, naming the method, the URL and the token's hash.

    pip install "pyjwt[crypto]"
    AGPAT_JWT=<a Cognito access token> python dpop_client.py --api https://api.example.com

The script makes an EC P-256 key, binds a new token to it (POST /tokens with
`dpopJwk`), then calls GET /items with it. `--check` also shows what a thief
who copied the token gets (401 as Bearer, 401 when replaying a proof) and
exits non-zero if anything differs from that: the end-to-end suite runs it so.
Keep the key as secret as the token: it is the second half of the credential.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import jwt  # PyJWT
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DpopKey:
    """An EC P-256 key pair that signs DPoP proofs (ES256)."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())

    def public_jwk(self) -> dict:
        jwk = ECAlgorithm.to_jwk(self._private.public_key(), as_dict=True)
        return {k: jwk[k] for k in ("kty", "crv", "x", "y")}

    def proof(self, method: str, url: str, token: str) -> str:
        """A fresh proof for one request: never reuse it."""
        claims = {
            "jti": str(uuid.uuid4()),
            "htm": method,
            "htu": url.split("?")[0].split("#")[0],
            "iat": int(time.time()),
            "ath": b64url(hashlib.sha256(token.encode()).digest()),
        }
        headers = {"typ": "dpop+jwt", "jwk": self.public_jwk()}
        return jwt.encode(claims, self._private, algorithm="ES256", headers=headers)


def call(method: str, url: str, headers: dict, body=None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def bound_call(method: str, url: str, token: str, key: DpopKey) -> tuple[int, dict]:
    """The way to call the API with a bound token: a new proof every time."""
    return call(method, url, {"Authorization": f"DPoP {token}", "DPoP": key.proof(method, url, token)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api", required=True, help="the API's base URL")
    parser.add_argument("--check", action="store_true", help="assert what a thief gets, too")
    args = parser.parse_args()
    api = args.api.rstrip("/")
    session = os.environ["AGPAT_JWT"]

    key = DpopKey()
    status, issued = call(
        "POST",
        f"{api}/tokens",
        {"Authorization": f"Bearer {session}"},
        {"name": "dpop example", "scopes": ["items:read"], "expiresInDays": 1, "dpopJwk": key.public_jwk()},
    )
    if status != 201:
        print(f"issuing failed: {status} {issued}", file=sys.stderr)
        return 1
    token = issued["token"]
    print(f"bound token {issued['id']} to key {issued['dpopJkt']}")

    url = f"{api}/items"
    status, _ = bound_call("GET", url, token, key)
    print(f"GET /items with a fresh proof: {status}")
    if not args.check:
        return 0 if status == 200 else 1

    # The API's own Lambda sees that the caller proved possession of the key.
    _, me = bound_call("GET", f"{api}/me", token, key)
    print(f"GET /me: dpopJkt {me.get('dpopJkt')}")
    as_bearer, _ = call("GET", url, {"Authorization": f"Bearer {token}"})
    proof = key.proof("GET", url, token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    first, _ = call("GET", url, headers)
    replayed, _ = call("GET", url, headers)
    print(f"the copied token as Bearer: {as_bearer}; a proof used once: {first}, replayed: {replayed}")
    proved = me.get("dpopJkt") == issued["dpopJkt"]
    return 0 if proved and (status, as_bearer, first, replayed) == (200, 401, 200, 401) else 1


if __name__ == "__main__":
    sys.exit(main())
