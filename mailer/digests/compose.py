"""A digest's mail composed from its articles: the editor's order, subject and
introduction, each article's summary, with a slot for each of the reader's links."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from mailer.content.articles import digest_order
from mailer.content.draft import render_intro, render_subject, subject_template
from mailer.content.summaries import summary_of
from mailer.mail import HTML_LIMIT_BYTES
from mailer.mail.render import RenderedEmail, render_newsletter
from mailer.models import Article, utcnow
from mailer.platform.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestArticle:
    title: str
    url: str
    paragraphs: list[str]
    author: str | None
    published_at: datetime | None


def digest(
    chosen: list[Article],
    *,
    subject: str | None = None,
    intro: str | None = None,
    archive_url: str | None = None,
) -> RenderedEmail:
    """The digest of these articles in the order an editor gave them (else newest first),
    under the editor's subject and introduction, with a slot for each of the reader's links."""
    settings: Settings = current_app.config["MAILER"]
    ordered = digest_order(chosen)
    now = utcnow()
    subject = subject or render_subject(
        subject_template(),
        list_name=settings.list_name,
        titles=[a.title for a in ordered],
        date=now.strftime("%-d %B %Y"),
    )
    rendered = render_newsletter(
        "digest",
        subject=subject,
        intro=render_intro(intro),
        articles=[
            DigestArticle(a.title, a.url, summary_of(a).split("\n\n"), a.author, a.published_at)
            for a in ordered
        ],
        list_name=settings.list_name,
        site_url=settings.site_url,
        site_name=settings.site_label,
        postal_address=settings.postal_address,
        archive_url=archive_url,
        date=now,
    )
    size = len(rendered.html.encode())
    if size > HTML_LIMIT_BYTES:
        log.warning("digest HTML is %d bytes; Gmail clips past 102 KB", size)
    return rendered
