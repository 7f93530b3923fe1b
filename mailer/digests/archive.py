"""The public archive: every digest that went out, as a page anyone can read, and as a feed.

An archived digest carries no reader's token or link: the unsubscribe link of the
mail becomes a link to the signup page. An editor can hide a digest from it;
MAILER_ARCHIVE=false turns the archive off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from mailer.mail import slots
from mailer.mail.links import external_url
from mailer.mail.slots import Slot
from mailer.models import Digest, DigestStatus
from mailer.platform.db import db
from mailer.platform.errors import NotFound

PER_PAGE = 20
ARCHIVED = (
    Digest.status.in_((DigestStatus.SENT, DigestStatus.SENT_WITH_FAILURES)),
    Digest.hidden_from_archive.is_(False),
)


@dataclass(frozen=True)
class ArchivePage:
    digests: list[Digest]
    page: int
    pages: int


def enabled() -> bool:
    return bool(current_app.config["MAILER"].archive)


def listing(page: int = 1) -> ArchivePage:
    if not enabled():
        raise NotFound("There is no archive.")
    digests, _total, page, pages = db.newest_page(Digest, list(ARCHIVED), page, PER_PAGE)
    return ArchivePage(digests, page, pages)


def archived_digest(digest_id: int) -> Digest:
    if not enabled():
        raise NotFound("There is no archive.")
    digest = db.session.scalar(select(Digest).where(Digest.id == digest_id, *ARCHIVED))
    if digest is None:
        raise NotFound("There is no such digest in the archive.")
    return digest


def public_html(digest: Digest) -> str:
    """The digest as sent, with the reader's unsubscribe link turned into a signup link."""
    signup = external_url("public.subscribe_form")
    name = current_app.config["MAILER"].list_name
    marker = digest.slot_marker
    if marker is None:
        return digest.html_body
    unsubscribe = re.escape(slots.placeholder(marker, Slot.UNSUBSCRIBE))
    preferences = re.escape(slots.placeholder(marker, Slot.PREFERENCES))
    # A reader's choices are their own: the public copy has no such link.
    html = re.sub(
        r"<p\b[^>]*>\s*<a\b[^>]*href=\"" + preferences + r"\"[^>]*>.*?</a>\s*</p>\s*",
        "",
        digest.html_body,
        flags=re.DOTALL,
    )
    html = re.sub(
        r"<a\b[^>]*href=\"" + unsubscribe + r"\"[^>]*>.*?</a>",
        f'<a href="{signup}" style="color:#0b57d0">Subscribe to {name}</a>',
        html,
        flags=re.DOTALL,
    )
    return slots.fill(html, marker, {Slot.UNSUBSCRIBE: signup, Slot.PREFERENCES: signup})


def recent(limit: int = 20) -> list[Digest]:
    return listing(1).digests[:limit]


def set_hidden(digest_id: int, hidden: bool) -> None:
    with db.transaction():
        digest = db.session.get(Digest, digest_id)
        if digest is None:
            raise NotFound(f"There is no digest {digest_id}.")
        digest.hidden_from_archive = hidden
