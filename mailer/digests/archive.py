"""The public archive: every digest that went out, as a page anyone can read, and as a feed.

An archived digest is a web page made from what the digest said (its subject,
introduction, articles and footer), never the mail itself: it carries no reader's token
or link, only a link to the signup page. An editor can hide a digest from it;
MAILER_ARCHIVE=false turns the archive off.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from mailer.content import articles
from mailer.content.draft import render_intro
from mailer.digests import compose
from mailer.mail.links import external_url
from mailer.models import Article, Digest, DigestStatus
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


@dataclass(frozen=True)
class Issue:
    """One archived digest as a web page and a feed entry: what it said, no reader's link."""

    digest: Digest
    inputs: compose.DigestInputs
    intro_html: str | None  # the editor's introduction, rendered as in the mail
    articles: list[compose.DigestArticle]
    url: str
    subscribe_url: str


def issue(digest: Digest) -> Issue:
    """The digest as its readers got it (all its articles, in its order), as a page of the
    web: its own heading and landmarks, none of the mail's "view in your browser" or "you
    get this because you subscribed", which are not true of a visitor."""
    chosen = list(db.session.scalars(select(Article).where(articles.in_digest(digest.id))))
    intro = render_intro(digest.intro)
    return Issue(
        digest=digest,
        inputs=compose.DigestInputs.of(digest),
        intro_html=intro.html if intro else None,
        articles=[compose.digest_article(a) for a in articles.digest_order(chosen)],
        url=external_url("archive.show", digest_id=digest.id),
        subscribe_url=external_url("public.subscribe_form"),
    )


def recent(limit: int = 20) -> list[Digest]:
    return listing(1).digests[:limit]


def set_hidden(digest_id: int, hidden: bool) -> None:
    with db.transaction():
        digest = db.session.get(Digest, digest_id)
        if digest is None:
            raise NotFound(f"There is no digest {digest_id}.")
        digest.hidden_from_archive = hidden
