"""A digest's mail composed from its articles: the editor's order, subject and
introduction, each article's summary, with a slot for each of the reader's links."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime

from flask import current_app

from mailer.content.articles import digest_order
from mailer.content.draft import render_intro, render_subject, subject_template
from mailer.content.summaries import summary_of
from mailer.mail import HTML_LIMIT_BYTES
from mailer.mail.render import RenderedEmail, render_newsletter
from mailer.models import Article, Digest, Frequency, utcnow
from mailer.platform.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestArticle:
    title: str
    url: str
    paragraphs: list[str]
    author: str | None
    published_at: datetime | None


def digest_article(article: Article) -> DigestArticle:
    """An article as a digest shows it: its summary in paragraphs."""
    paragraphs = summary_of(article).split("\n\n")
    return DigestArticle(
        article.title, article.url, paragraphs, article.author, article.published_at
    )


@dataclass(frozen=True)
class DigestInputs:
    """What a digest's mail is made of besides its articles, fixed on its row when it is
    made: every segment rendered later (minutes, or for a weekly run hours after) says the
    same date under the same subject template and footer as the digest itself."""

    subject_template: str
    date: datetime
    list_name: str
    site_url: str
    site_name: str
    postal_address: str

    @classmethod
    def now(cls) -> DigestInputs:
        settings: Settings = current_app.config["MAILER"]
        return cls(
            subject_template=subject_template(),
            date=utcnow(),
            list_name=settings.list_name,
            site_url=settings.site_url,
            site_name=settings.site_label,
            postal_address=settings.postal_address,
        )

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "date": self.date.isoformat()})

    @classmethod
    def of(cls, digest: Digest) -> DigestInputs:
        """The inputs fixed on the digest's row; today's for a digest made before they were."""
        if not digest.inputs:
            return cls.now()
        values = json.loads(digest.inputs)
        return cls(**{**values, "date": datetime.fromisoformat(values["date"])})


def digest(
    chosen: list[Article],
    inputs: DigestInputs,
    *,
    subject: str | None = None,
    intro: str | None = None,
    archive_url: str | None = None,
    frequency: Frequency = Frequency.DAILY,
) -> RenderedEmail:
    """The digest of these articles in the order an editor gave them (else newest first),
    under the editor's subject and introduction, with a slot for each of the reader's links."""
    ordered = digest_order(chosen)
    subject = subject or render_subject(
        inputs.subject_template,
        list_name=inputs.list_name,
        titles=[a.title for a in ordered],
        date=inputs.date.strftime("%-d %B %Y"),
    )
    rendered = render_newsletter(
        "digest",
        subject=subject,
        intro=render_intro(intro),
        articles=[digest_article(a) for a in ordered],
        list_name=inputs.list_name,
        site_url=inputs.site_url,
        site_name=inputs.site_name,
        postal_address=inputs.postal_address,
        archive_url=archive_url,
        date=inputs.date,
        # The weekly mail says so, and offers its readers every day instead.
        weekly=frequency is Frequency.WEEKLY,
    )
    size = len(rendered.html.encode())
    if size > HTML_LIMIT_BYTES:
        log.warning("digest HTML is %d bytes; Gmail clips past 102 KB", size)
    return rendered
