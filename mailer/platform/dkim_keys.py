"""DKIM keys: read and checked at start-up, made by `mailer dkim-keygen`, published as TXT."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

MIN_RSA_BITS = 2048
# A TXT record holds strings of at most 255 characters; longer values are split.
TXT_STRING = 255


class KeyProblem(RuntimeError):
    """A key file that cannot sign; the message names the setting."""


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def load_key(path: str, variable: str, *, ed25519_key: bool = False) -> PrivateKey:
    """The private key in a PEM file; KeyProblem naming the variable if it is not usable."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyProblem(f"{variable}: cannot read {path!r} ({exc.strerror}).") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyProblem(f"{variable}: {path!r} is not an unencrypted PEM key ({exc}).") from None
    if ed25519_key:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyProblem(f"{variable}: {path!r} is not an Ed25519 key.")
        return key
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise KeyProblem(f"{variable}: {path!r} must be an RSA key of {MIN_RSA_BITS} bits or more.")
    return key


def public_record(key: PrivateKey) -> str:
    """The TXT record value that publishes the key's public half."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def generate(*, use_ed25519: bool) -> PrivateKey:
    if use_ed25519:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)


def write_key(key: PrivateKey, path: Path) -> None:
    """PEM, readable by its owner only (0600), never over an existing key."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)


def dns_record(selector: str, domain: str, key: PrivateKey) -> str:
    """The zone-file line to publish: `<selector>._domainkey.<domain> TXT "..." "..."`."""
    value = public_record(key)
    strings = " ".join(f'"{value[i : i + TXT_STRING]}"' for i in range(0, len(value), TXT_STRING))
    return f"{selector}._domainkey.{domain} TXT {strings}"
