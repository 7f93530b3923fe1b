"""A digest's segments: the digest as the readers of one set of sections get it.

Readers who chose the same sections get the same mail, so it is rendered once per
set, the first time the worker making the digest's rows meets a reader with that
set. A set whose sections have nothing new in this digest gets a segment with no
articles and no body: its readers get no mail, and are counted as such.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select

from mailer import mail as emails
from mailer import sections
from mailer.content import articles
from mailer.digests import compose
from mailer.mail import links
from mailer.mail.render import RenderedEmail
from mailer.models import (
    ALL_SECTIONS_KEY,
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestSegment,
    Frequency,
    Subscriber,
    SubscriberStatus,
)
from mailer.platform.db import db


def make_missing(digest: Digest, keys: Collection[str]) -> int:
    """Renders and stores a segment for each key the digest has none for yet; inside the
    caller's transaction. Another worker making the same one at once is harmless."""
    existing = set(
        db.session.scalars(
            select(DigestSegment.sections_key).where(DigestSegment.digest_id == digest.id)
        )
    )
    missing = sorted(set(keys) - existing)
    if not missing:
        return 0
    chosen = list(db.session.scalars(select(Article).where(articles.in_digest(digest.id))))
    for key in missing:
        db.session.execute(
            db.insert(DigestSegment)
            .values(digest_id=digest.id, sections_key=key, **_rendered(digest, chosen, key))
            .on_conflict_do_nothing()
        )
    return len(missing)


def _rendered(digest: Digest, chosen: list[Article], key: str) -> dict[str, object]:
    picked = sections.articles_for(chosen, key)
    if not picked:
        return {"articles": 0, "render_seconds": 0.0}
    started = time.perf_counter()
    if len(picked) == len(chosen):
        rendered = emails.stored_digest(digest)  # the whole digest, rendered when made
    else:
        rendered = compose.digest(
            picked,
            compose.DigestInputs.of(digest),
            subject=digest.subject if digest.subject_given else None,
            intro=digest.intro,
            archive_url=links.archive_url(digest.id),
            frequency=digest.frequency,
        )
    return {
        "articles": len(picked),
        "subject": rendered.subject,
        "text_body": rendered.text,
        "html_body": rendered.html,
        "slot_marker": rendered.slot_marker,
        "render_seconds": time.perf_counter() - started,
    }


def rendered(segment: DigestSegment) -> RenderedEmail:
    return RenderedEmail(
        segment.subject or "", segment.text_body or "", segment.html_body or "", segment.slot_marker
    )


@dataclass(frozen=True)
class SegmentSummary:
    key: str
    described: str  # "Every section", "Politics, Sport"
    articles: int
    readers: int  # delivery rows (0 for a segment with nothing new)
    sent: int
    render_seconds: float


def summaries(digest_id: int) -> list[SegmentSummary]:
    """Each segment of a digest with its readers and how many were sent, most readers first."""
    rows = db.session.execute(
        select(
            DigestSegment.sections_key,
            DigestSegment.articles,
            DigestSegment.render_seconds,
            func.count(Delivery.id),
            func.count(Delivery.id).filter(Delivery.status == DeliveryStatus.SENT),
        )
        .outerjoin(
            Delivery,
            # The digest's own rows, by the (digest, reader) index: no scan of every digest.
            (Delivery.digest_id == DigestSegment.digest_id)
            & (Delivery.segment_id == DigestSegment.id),
        )
        .where(DigestSegment.digest_id == digest_id)
        .group_by(DigestSegment.id)
    ).all()
    known = sections.labels()
    found = [
        SegmentSummary(key, sections.describe(key, known), count, readers, sent, seconds)
        for key, count, seconds, readers, sent in rows
    ]
    return sorted(found, key=lambda s: (-s.readers, s.key))


@dataclass(frozen=True)
class PlannedSegment:
    key: str
    described: str
    readers: int
    articles: list[Article]  # what they would get now; empty: no mail for them


def planned(frequency: Frequency, waiting: list[Article], limit: int = 64) -> list[PlannedSegment]:
    """The next run of this frequency as it would go out now: each set of sections its
    active readers chose (the largest `limit`), with the waiting articles they would get."""
    key = func.coalesce(Subscriber.sections, ALL_SECTIONS_KEY)
    rows = db.session.execute(
        select(key, func.count())
        .where(Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.frequency == frequency)
        .group_by(key)
        .order_by(func.count().desc(), key)
        .limit(limit)
    ).all()
    known = sections.labels()
    return [
        PlannedSegment(k, sections.describe(k, known), n, sections.articles_for(waiting, k))
        for k, n in rows
    ]


@dataclass(frozen=True)
class SubjectMiss:
    """A set of sections that would get the editor's subject without the article it names."""

    segment: PlannedSegment
    named: list[Article]  # the articles the subject names that this set does not get


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def subject_misses(subject: str, plan: list[PlannedSegment]) -> list[SubjectMiss]:
    """The sets that get mail but not every article the saved subject names.

    The editor's subject goes to every set; it names an article when it holds the
    article's whole title (letters and digits, case and punctuation aside)."""
    said = f" {_words(subject)} "
    every = {a.id: a for p in plan for a in p.articles}
    named = [a for a in every.values() if _words(a.title) and f" {_words(a.title)} " in said]
    misses = []
    for segment in plan:
        ids = {a.id for a in segment.articles}
        missing = [a for a in named if a.id not in ids]
        if segment.articles and missing:
            misses.append(SubjectMiss(segment, missing))
    return misses
