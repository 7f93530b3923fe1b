"""Bearer tokens for the site's API: shown once, stored as a SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update

from mailer.models import ApiToken, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput

PREFIX = "mlr_"


def _hash(token: str) -> str:
    # The token has 256 bits of entropy, so a fast hash is enough (no salt, no KDF).
    return hashlib.sha256(token.encode()).hexdigest()


class TokenNameTaken(InvalidInput):
    status = 409


def create_api_token(name: str, *, rotate: bool = False) -> str:
    """Creates a token called `name` and returns it; it cannot be read back later.

    A revoked name can be used again. A live one is replaced only with `rotate`:
    the old token stops working at once.
    """
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidInput("A token name is 1 to 100 printable characters long.")
    token = PREFIX + secrets.token_urlsafe(32)
    session = db.session
    with db.transaction():
        existing = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if existing is None:
            session.add(ApiToken(name=name, token_hash=_hash(token)))
        elif existing.revoked_at is None and not rotate:
            raise TokenNameTaken(
                f"A token called {name!r} exists already. Use --rotate to replace it "
                "(the old one stops working), or choose another name."
            )
        else:
            existing.token_hash = _hash(token)
            existing.revoked_at = None
            existing.created_at = utcnow()
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
