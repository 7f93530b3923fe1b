"""Bearer tokens for the site's API: shown once, stored as a SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update

from mailer.db import db
from mailer.errors import InvalidInput
from mailer.models import ApiToken, utcnow

PREFIX = "mlr_"


def _hash(token: str) -> str:
    # The token has 256 bits of entropy, so a fast hash is enough (no salt, no KDF).
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(name: str) -> str:
    """Creates a token called `name` and returns it; it cannot be read back later."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("A token name is 1 to 100 characters long.")
    token = PREFIX + secrets.token_urlsafe(32)
    session = db.session
    with db.transaction():
        if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise InvalidInput(f"A token called {name!r} exists already.")
        session.add(ApiToken(name=name, token_hash=_hash(token)))
    return token


def revoke_api_token(name: str) -> bool:
    with db.transaction():
        revoked = db.change(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    return revoked == 1


def authenticate(token: str) -> ApiToken | None:
    """The live token matching `token`, or None."""
    if not token.startswith(PREFIX):
        return None
    return db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _hash(token), ApiToken.revoked_at.is_(None))
    )
