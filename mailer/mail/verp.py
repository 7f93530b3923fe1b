"""VERP: an envelope sender per mail, naming what it was, so a bounce says whose mail bounced.

`bounces+<token>@<bounce domain>`, the token `<kind><id>-<mac>`: the kind of mail (`d` a
delivery row, `c` a confirmation or welcome), its id in decimal, and 10 bytes of an
HMAC-SHA256 of both under a key of its own derived from the secret, in lower-case base32
(16 characters). At most 28 characters, so with the localpart (at most 20) the local
part stays under RFC 5321's 64; lower case, so a relay that lowercases local parts
changes nothing; and it cannot be forged to name another mail (80 bits of MAC). The id
is readable: a bounce's author learns a row number, never an address.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app

from mailer.platform.settings import Settings

MAC_BYTES = 10  # 80 bits: 16 base32 characters, no padding
TOKEN = re.compile(r"([dc])([1-9][0-9]{0,9})-([a-z2-7]{16})")


class MailKind(StrEnum):
    DELIVERY = "d"  # a newsletter: the id is the delivery row's
    CONFIRMATION = "c"  # a confirmation or welcome mail: the id is the reader's


@dataclass(frozen=True)
class MailRef:
    kind: MailKind
    id: int


@functools.cache
def _mac_keys(secret_keys: tuple[str, ...]) -> list[bytes]:
    # A key of its own per purpose, from each secret key: rotation keeps old tokens readable.
    return [
        hmac.new(secret.encode(), b"mailer.mail.verp.mac", hashlib.sha256).digest()
        for secret in secret_keys
    ]


def _mac(key: bytes, kind: str, number: str) -> str:
    digest = hmac.new(key, f"{kind}:{number}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:MAC_BYTES]).decode().lower()


def make_token(ref: MailRef, settings: Settings | None = None) -> str:
    settings = settings or current_app.config["MAILER"]
    number = str(ref.id)
    return f"{ref.kind.value}{number}-{_mac(_mac_keys(settings.secret_keys)[0], ref.kind, number)}"


def read_token(token: str, settings: Settings | None = None) -> MailRef | None:
    """The mail a token names, or None for anything not made with one of our keys."""
    settings = settings or current_app.config["MAILER"]
    match = TOKEN.fullmatch(token)
    if match is None:
        return _read_sealed_token(token, settings)
    kind, number, mac = match.groups()
    for key in _mac_keys(settings.secret_keys):
        if hmac.compare_digest(_mac(key, kind, number), mac):
            return MailRef(MailKind(kind), int(number))
    return None


# --- The previous token, read only --------------------------------------------------
# Until this release the token was one AES block (kind, id, 7 zero bytes) in 26 base32
# characters. Mails sent with it still bounce, and complaints and late DSNs can come
# weeks later, and a token carries no date to age it out by: so these are read, always
# (never made). That costs nothing in safety (a forgery has to hit 56 zero bits); the
# code can go once every mail sent before the change is older than anyone will still
# answer, say a year on.

_OLD_PADDING = bytes(7)


@functools.cache
def _old_cipher_keys(secret_keys: tuple[str, ...]) -> list[bytes]:
    return [
        # The label the tokens in mails already sent were made with (before the rename).
        hmac.new(secret.encode(), b"mailer.verp", hashlib.sha256).digest()[:16]
        for secret in secret_keys
    ]


def _read_sealed_token(token: str, settings: Settings) -> MailRef | None:
    if len(token) != 26 or not token.isalnum():
        return None
    try:
        sealed = base64.b32decode(token.upper() + "======")
    except ValueError:
        return None
    for key in _old_cipher_keys(settings.secret_keys):
        # One block, no chaining: ECB is how the old token was made; nothing is sealed so.
        decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
        block = decryptor.update(sealed) + decryptor.finalize()
        if block[9:] == _OLD_PADDING and block[:1] in (b"d", b"c"):
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
