"""VERP: an envelope sender per mail, naming what it was, so a bounce says whose mail bounced.

`bounces+<token>@<bounce domain>`: the token is one AES block holding the kind of
mail (a delivery row, a confirmation) and its id, with 56 bits of zeros that only
the secret key turns into a valid block. It is short (26 characters, lowercase, so
a relay that lowercases local parts changes nothing), opaque (it does not reveal
how many readers or digests there are) and cannot be forged to name another reader.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app

from mailer.platform.settings import Settings

PADDING = bytes(7)


class MailKind(StrEnum):
    DELIVERY = "d"  # a newsletter: the id is the delivery row's
    CONFIRMATION = "c"  # a confirmation or welcome mail: the id is the reader's


@dataclass(frozen=True)
class MailRef:
    kind: MailKind
    id: int


@functools.cache
def _cipher_keys(secret_keys: tuple[str, ...]) -> list[bytes]:
    # A key of its own per purpose, from each secret key: rotation keeps old tokens readable.
    return [
        hmac.new(secret.encode(), b"mailer.verp", hashlib.sha256).digest()[:16]
        for secret in secret_keys
    ]


@functools.cache
def _encryptor(key: bytes):
    # One block of AES is a keyed permutation: ECB has nothing to leak here, and with no
    # chaining one encryptor serves every block (one a newsletter, so made once).
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305


def make_token(ref: MailRef, settings: Settings | None = None) -> str:
    settings = settings or current_app.config["MAILER"]
    block = ref.kind.value.encode() + ref.id.to_bytes(8, "big") + PADDING
    sealed = _encryptor(_cipher_keys(settings.secret_keys)[0]).update(block)
    return base64.b32encode(sealed).decode().rstrip("=").lower()


def read_token(token: str, settings: Settings | None = None) -> MailRef | None:
    """The mail a token names, or None for anything not made with one of our keys."""
    settings = settings or current_app.config["MAILER"]
    if len(token) != 26 or not token.isalnum():
        return None
    try:
        sealed = base64.b32decode(token.upper() + "======")
    except ValueError:
        return None
    for key in _cipher_keys(settings.secret_keys):
        decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
        block = decryptor.update(sealed) + decryptor.finalize()
        if block[9:] == PADDING and block[:1] in (b"d", b"c"):
            number = int.from_bytes(block[1:9], "big")
            if 0 < number < 2**31:
                return MailRef(MailKind(block[:1].decode()), number)
    return None


def envelope_sender(ref: MailRef, settings: Settings | None = None) -> str:
    settings = settings or current_app.config["MAILER"]
    return f"{settings.bounce_localpart}+{make_token(ref, settings)}@{settings.bounce_mail_domain}"


def ref_of_address(address: str, settings: Settings | None = None) -> MailRef | None:
    """The mail a VERP address names: `bounces+<token>@...`, whatever the case."""
    settings = settings or current_app.config["MAILER"]
    local, _, _domain = address.strip().strip("<>").rpartition("@")
    prefix, plus, token = local.partition("+")
    if not plus or prefix.lower() != settings.bounce_localpart.lower():
        return None
    return read_token(token.lower(), settings)


@functools.cache
def _message_id_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"mailer.message-id", hashlib.sha256).digest()


def opaque_message_id(settings: Settings, *parts: object) -> str:
    """A Message-ID derived from the row (stable, unique) that reveals nothing of counts."""
    key = _message_id_key(settings.secret_keys[0])
    mac = hmac.new(key, ":".join(map(str, parts)).encode(), hashlib.sha256).digest()
    return f"<{base64.b32encode(mac[:20]).decode().lower()}@{settings.sending_domain}>"
