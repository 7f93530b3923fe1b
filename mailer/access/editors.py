"""Editors: accounts for the console, with Argon2id password hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from mailer.mail.addresses import normalize_address
from mailer.models import Editor, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
# Verified when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def create_editor(email: str, password: str) -> int:
    address = normalize_address(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.")
    with db.transaction():
        if db.session.scalar(select(Editor.id).where(Editor.email == address.key)):
            raise InvalidInput(f"An editor with the address {address.key} exists already.")
        editor = Editor(email=address.key, password_hash=_hasher.hash(password))
        db.session.add(editor)
        db.session.flush()
        return editor.id


def authenticate(email: str, password: str) -> Editor | None:
    """The editor when email and password match, else None (same cost either way)."""
    row = db.session.execute(
        select(Editor.id, Editor.password_hash).where(Editor.email == email.strip().lower())
    ).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    with db.transaction():
        editor = db.session.get_one(Editor, row.id)
        editor.last_login_at = utcnow()
        if _hasher.check_needs_rehash(editor.password_hash):
            editor.password_hash = _hasher.hash(password)
    return editor


def editor_of_session(editor_id: object, epoch: object) -> Editor | None:
    """The editor a session cookie names, if that session has not been ended by a logout."""
    if not isinstance(editor_id, int) or not isinstance(epoch, int) or editor_id > 2**31 - 1:
        return None
    editor = db.session.get(Editor, editor_id)
    return editor if editor is not None and editor.session_epoch == epoch else None


def end_sessions(editor_id: int) -> None:
    """Logs the editor out everywhere: every session cookie issued so far stops working."""
    with db.transaction():
        db.change(
            update(Editor)
            .where(Editor.id == editor_id)
            .values(session_epoch=Editor.session_epoch + 1)
        )
