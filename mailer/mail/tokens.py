"""Signed, purpose-bound link tokens. They carry ids, never addresses."""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from mailer.models import utcnow
from mailer.platform.errors import UserError


class Purpose(StrEnum):
    # The salt: a token minted for one purpose never verifies for another.
    CONFIRM = "mailer.confirm"
    UNSUBSCRIBE = "mailer.unsubscribe"
    PREFERENCES = "mailer.preferences"
    SIGNUP_FORM = "mailer.signup-form"


# The unsubscribe "token" in an editor's test copy: never a signed token (those hold a dot).
TEST_UNSUBSCRIBE_TOKEN = "test"  # noqa: S105 - not a secret


class TokenError(UserError):
    """A link token that cannot be used; the page says why and offers to sign up again."""

    title = "This link does not work"
    offer_signup = True


class TokenInvalid(TokenError):
    status = 400


class TokenExpired(TokenError):
    status = 410


def _keys() -> list[str]:
    # MAILER_SECRET_KEY lists keys newest first; itsdangerous wants oldest first
    # and signs with the last one.
    return list(reversed(current_app.config["MAILER"].secret_keys))


def _timed(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_keys(), salt=purpose.value)


def _untimed(purpose: Purpose) -> URLSafeSerializer:
    return URLSafeSerializer(_keys(), salt=purpose.value)


@dataclass(frozen=True)
class ReaderLink:
    """Whom a link names: the reader's id and the key the link was made with."""

    subscriber_id: int
    key: str | None  # None: a link mailed before links carried a key


def make_confirm_token(subscriber_id: int, link_key: str) -> str:
    return _timed(Purpose.CONFIRM).dumps([subscriber_id, link_key])


def read_confirm_token(token: str) -> ReaderLink:
    max_age = current_app.config["MAILER"].confirm_max_age_days * 86400
    try:
        value = _timed(Purpose.CONFIRM).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenExpired("This confirmation link has expired.") from None
    except BadSignature:
        raise TokenInvalid("This confirmation link is not valid.") from None
    return _as_link(value, "This confirmation link is not valid.")


def make_unsubscribe_token(subscriber_id: int, link_key: str) -> str:
    # No timestamp: unsubscribe links must keep working for years.
    return _fast_signer(Purpose.UNSUBSCRIBE).dumps([subscriber_id, link_key])


class FastSigner:
    """itsdangerous's URLSafeSerializer output, made without its layers: one made per reader
    of every newsletter, so five times faster matters. Reading stays with itsdangerous."""

    def __init__(self, serializer: URLSafeSerializer) -> None:
        signer = serializer.make_signer()
        self.key = signer.derive_key()
        self.digest = signer.digest_method

    def dumps(self, value: object) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps(value, separators=(",", ":")).encode()
        ).rstrip(b"=")
        mac = hmac.new(self.key, payload, self.digest).digest()
        return (payload + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


_signers: dict[tuple[tuple[str, ...], Purpose], FastSigner] = {}


def _fast_signer(purpose: Purpose) -> FastSigner:
    keys = current_app.config["MAILER"].secret_keys
    if (keys, purpose) not in _signers:
        _signers[(keys, purpose)] = FastSigner(_untimed(purpose))
    return _signers[(keys, purpose)]


def read_unsubscribe_token(token: str) -> ReaderLink:
    try:
        value = _untimed(Purpose.UNSUBSCRIBE).loads(token)
    except BadSignature:
        raise TokenInvalid("This unsubscribe link is not valid.") from None
    return _as_link(value, "This unsubscribe link is not valid.")


def make_preferences_token(subscriber_id: int, link_key: str) -> str:
    # Like the unsubscribe link: in every newsletter, working for years, this reader's only.
    return _fast_signer(Purpose.PREFERENCES).dumps([subscriber_id, link_key])


def read_preferences_token(token: str) -> ReaderLink:
    try:
        value = _untimed(Purpose.PREFERENCES).loads(token)
    except BadSignature:
        raise TokenInvalid("This link to your choices is not valid.") from None
    return _as_link(value, "This link to your choices is not valid.")


def make_form_token() -> str:
    """Stamps the signup form with the time it was shown (for the minimum fill time)."""
    return _timed(Purpose.SIGNUP_FORM).dumps("signup")


def form_age_seconds(token: str) -> float | None:
    """Seconds since the form was shown, or None when the stamp is missing or forged."""
    try:
        _value, signed_at = _timed(Purpose.SIGNUP_FORM).loads(token, return_timestamp=True)
    except BadSignature:
        return None
    return (utcnow() - signed_at).total_seconds()


def _as_link(value: object, message: str) -> ReaderLink:
    if _is_id(value):  # the form of links mailed before they carried a key
        return ReaderLink(value, None)
    if isinstance(value, list) and len(value) == 2:
        subscriber_id, key = value
        if _is_id(subscriber_id) and isinstance(key, str) and 0 < len(key) <= 64:
            return ReaderLink(subscriber_id, key)
    raise TokenInvalid(message)


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
