#!/usr/bin/env python3
"""A key-bound orgwall client: private_key_jwt client authentication and DPoP-bound tokens.

Authlib signs the client assertion (RFC 7523) and calls the token endpoint; the DPoP proofs
(RFC 9449) are built with joserfc, since Authlib has no client-side DPoP.

    pip install authlib==1.9.10 joserfc==1.8.0 requests==2.34.2

    # once: a key pair, and the public half as a JWKS to register with orgwall
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key.pem
    python keybound_client.py jwks client.key.pem > client.jwks.json
    orgwall app create --name "Acme backend" --org org_acme \
        --jwks-file client.jwks.json --require-dpop
    orgwall app authorize --client-id <CLIENT_ID> --audience https://api.yourapp.com \
        --scopes "read:data"

    # then, whenever it needs the org's records
    python keybound_client.py call --url http://127.0.0.1:3000 --client-id <CLIENT_ID> \
        --key client.key.pem --audience https://api.yourapp.com --org org_acme

`call` prints the org's records as JSON on stdout. `--show-refusals` then also replays the
resource request's proof, sends the token as a plain Bearer token, and sends it with a proof
from another key, and prints the status orgwall answered each with (401 every time).
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import uuid
import warnings

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

# orgwall names Ed25519 signatures "EdDSA" (RFC 8037), which joserfc flags as superseded by
# RFC 9864's "Ed25519"; the signature itself is the same.
warnings.filterwarnings("ignore", message="EdDSA is deprecated")


def load_private_key(path):
    """The PEM private key at `path` (P-256, Ed25519 or RSA) and the JWS algorithm it signs with."""
    with open(path, "rb") as f:
        pem = f.read()
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return ECKey.import_key(pem), "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(pem), "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return RSAKey.import_key(pem), "PS256"
    sys.exit(f"{path}: use a P-256, Ed25519 or RSA (2048 bits or more) private key")


def public_jwks(key):
    """The JWKS to register: the public half only, with its RFC 7638 thumbprint as `kid`."""
    return {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}


def dpop_proof(key, alg, method, url, access_token=None):
    """A DPoP proof (RFC 9449) for one request: `url` without query or fragment."""
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    return jwt.encode(header, claims, key, algorithms=[alg])


def fetch_dpop_token(base_url, client_id, client_key, client_alg, dpop_key, audience):
    """A DPoP-bound access token, the client authenticated by a signed assertion."""
    token_url = f"{base_url}/oauth2/token"
    # The assertion: iss = sub = client_id, aud = token_url, a fresh jti, exp one hour ahead.
    auth = PrivateKeyJWT(token_url, alg=client_alg, headers={"kid": client_key.thumbprint()})
    with OAuth2Session(client_id, client_key, token_endpoint_auth_method=auth) as session:
        token = session.fetch_token(
            token_url,
            grant_type="client_credentials",
            audience=audience,
            headers={
                "Accept": "application/json",
                "DPoP": dpop_proof(dpop_key, "ES256", "POST", token_url),
            },
        )
    if token.get("token_type") != "DPoP":
        sys.exit(f"expected a DPoP-bound token, got token_type {token.get('token_type')!r}")
    return token["access_token"]


def get_with_dpop(url, access_token, proof):
    return requests.get(
        url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}, timeout=10
    )


def call(args):
    base_url = args.url.rstrip("/")
    client_key, client_alg = load_private_key(args.key)
    # The DPoP key lives only in this process: a token bound to it is useless to whoever
    # copies the token without the key.
    dpop_key = ECKey.generate_key("P-256")

    access_token = fetch_dpop_token(
        base_url, args.client_id, client_key, client_alg, dpop_key, args.audience
    )

    data_url = f"{base_url}/orgs/{args.org}/data"
    proof = dpop_proof(dpop_key, "ES256", "GET", data_url, access_token)
    resp = requests.get(
        data_url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}, timeout=10
    )
    resp.raise_for_status()
    print(json.dumps(resp.json(), indent=2))

    if args.show_refusals:
        attempts = {
            "the same proof again": lambda: get_with_dpop(data_url, access_token, proof),
            "the token as Bearer": lambda: requests.get(
                data_url, headers={"Authorization": f"Bearer {access_token}"}, timeout=10
            ),
            "a proof from another key": lambda: get_with_dpop(
                data_url,
                access_token,
                dpop_proof(ECKey.generate_key("P-256"), "ES256", "GET", data_url, access_token),
            ),
        }
        for what, attempt in attempts.items():
            print(f"refusal: {what}: {attempt().status_code}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    jwks = sub.add_parser("jwks", help="print the public JWKS of a PEM private key")
    jwks.add_argument("key", help="PEM private key file")

    c = sub.add_parser("call", help="get a DPoP-bound token and read the org's records")
    c.add_argument("--url", required=True, help="orgwall's PUBLIC_URL, e.g. http://127.0.0.1:3000")
    c.add_argument("--client-id", required=True)
    c.add_argument("--key", required=True, help="the app's PEM private key file")
    c.add_argument("--audience", required=True, help="the API's audience")
    c.add_argument("--org", required=True, help="the app's organization code")
    c.add_argument("--show-refusals", action="store_true", help="also show what a thief gets")

    args = parser.parse_args()
    if args.command == "jwks":
        key, _ = load_private_key(args.key)
        print(json.dumps(public_jwks(key), indent=2))
    else:
        call(args)


if __name__ == "__main__":
    main()
