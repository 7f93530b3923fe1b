"""An email address as a reader typed it: validated, normalized, and its unique key."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from flask import current_app

from mailer.platform.errors import InvalidInput

MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class Address:
    email: str  # normalized by email-validator
    key: str  # the unique key: one reader per address, whatever its case


def normalize_address(raw: object, *, check_deliverability: bool | None = None) -> Address:
    """Validates an address typed by a reader; raises InvalidInput with a readable reason."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("Please enter your email address.")
    if len(raw) > 320 or any(c in raw for c in "\r\n\0"):
        raise InvalidInput("That does not look like an email address.")
    try:
        valid = validate_email(
            raw.strip(),
            check_deliverability=current_app.config["MAILER"].check_deliverability
            if check_deliverability is None
            else check_deliverability,
            # Our relay path does not promise SMTPUTF8; an IDN domain is fine.
            allow_smtputf8=False,
        )
    except EmailNotValidError as exc:
        raise InvalidInput(f"That does not look like an email address: {exc}") from None
    return Address(email=valid.normalized, key=valid.normalized.lower())


def clean_name(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput("The name must be text.")
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise InvalidInput("The name must be a single line of text.")
    name = " ".join(raw.split())
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The name can be at most {MAX_NAME_LENGTH} characters long.")
    return name or None
