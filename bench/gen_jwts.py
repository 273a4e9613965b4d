#!/usr/bin/env python3
"""Signed JWTs for bench/run.sh: an ES256 key pair, client assertions (RFC 7523) and DPoP
proofs (RFC 9449), one per line, so that wrk can send a fresh one with every request (orgwall
refuses a replayed `jti`).

    gen_jwts.py keygen DIR                        # DIR/key.pem, DIR/jwks.json (public)
    gen_jwts.py assertions DIR N CLIENT_ID AUD    # N client assertions on stdout
    gen_jwts.py dpop DIR N METHOD URL [TOKEN]     # N DPoP proofs (with `ath` when TOKEN is given)

Proofs carry `iat` 30 s ahead of now, which orgwall accepts (60 s either way): a run must
start within 30 s and end within 90 s of generating them.
"""

import base64
import hashlib
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key) -> dict:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }


def sign(key, header: dict, claims: dict) -> str:
    signing_input = (
        b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def load(directory: str):
    with open(os.path.join(directory, "key.pem"), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def main(argv: list[str]) -> None:
    command, directory = argv[1], argv[2]
    if command == "keygen":
        key = ec.generate_private_key(ec.SECP256R1())
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "key.pem"), "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        with open(os.path.join(directory, "jwks.json"), "w") as f:
            json.dump({"keys": [public_jwk(key)]}, f)
        return

    key = load(directory)
    count = int(argv[3])
    now = int(time.time())
    out = sys.stdout
    if command == "assertions":
        client_id, audience = argv[4], argv[5]
        header = {"alg": "ES256", "typ": "JWT"}
        for _ in range(count):
            claims = {
                "iss": client_id,
                "sub": client_id,
                "aud": audience,
                "iat": now,
                "exp": now + 600,
                "jti": b64(os.urandom(16)),
            }
            out.write(sign(key, header, claims) + "\n")
    elif command == "dpop":
        method, url = argv[4], argv[5]
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(key)}
        extra = {}
        if len(argv) > 6:
            extra["ath"] = b64(hashlib.sha256(argv[6].encode()).digest())
        for _ in range(count):
            claims = {"jti": b64(os.urandom(16)), "htm": method, "htu": url, "iat": now + 30}
            claims.update(extra)
            out.write(sign(key, header, claims) + "\n")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
