"""The digest: take the waiting articles, render once, hand one row per reader to delivery."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailer import sections
from mailer.content import articles, intake
from mailer.content import draft as editorial
from mailer.digests import compose
from mailer.mail import links
from mailer.mail.render import RenderedEmail
from mailer.models import (
    ALL_SECTIONS_KEY,
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Frequency,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.errors import NotFound, UserError

log = logging.getLogger(__name__)


class NothingToSend(UserError):
    status = 409
    title = "Nothing new"


class AlreadySending(UserError):
    status = 409
    title = "Already sending"


class NoReaders(UserError):
    status = 409
    title = "No readers yet"


def has_active_readers(frequency: Frequency | None = None) -> bool:
    active = select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE)
    if frequency is not None:
        active = active.where(Subscriber.frequency == frequency)
    return db.session.scalar(active.limit(1)) is not None


def create_digest(
    *,
    trigger: str,
    period: str | None = None,
    subject: str | None = None,
    intro: str | None = None,
    frequency: Frequency = Frequency.DAILY,
) -> int:
    """Takes every waiting article up to a watermark and starts sending. Returns the digest id.

    One transaction: two triggers at once make one digest (the other gets
    AlreadySending or NothingToSend), and an article lands in exactly one digest of
    each frequency. The digest is rendered whole here (the archive's copy); each set
    of sections its readers chose is rendered as the worker making its rows meets it.
    """
    settings = current_app.config["MAILER"]
    if not has_active_readers(frequency):
        # A digest to nobody would use up every waiting article: make none, keep them waiting.
        raise NoReaders(
            f"No reader of the {frequency} digest has confirmed yet, so no digest was made; "
            "the articles wait."
        )
    _take_in_queued_articles()
    session = db.session
    column = articles.digest_column(frequency)
    try:
        with db.transaction():
            waiting = (
                select(Article.id)
                .where(*articles.waiting_for(frequency))
                .order_by(Article.id)
                .limit(settings.digest_max_articles)
                .subquery()
            )
            watermark = session.scalar(select(func.max(waiting.c.id)))
            if watermark is None:
                raise NothingToSend("There are no new articles since the last digest.")
            digest = Digest(
                status=DigestStatus.SENDING,
                frequency=frequency,
                sending_slot=frequency.sending_slot,
                period=period,
                trigger=trigger,
                article_watermark=watermark,
                subject="",
                text_body="",
                html_body="",
                last_enqueued_at=utcnow(),
            )
            session.add(digest)
            session.flush()  # a second digest while one is sending fails here
            taken = db.change(
                update(Article)
                .where(*articles.waiting_for(frequency), Article.id <= watermark)
                .values({column: digest.id})
            )
            if not taken:
                raise NothingToSend("There are no new articles since the last digest.")
            chosen = list(session.scalars(select(Article).where(column == digest.id)))
            if not _anyone_gets(chosen, frequency):
                # An issue nobody receives would use the articles up: they wait for one.
                raise NothingToSend(
                    f"No {frequency} reader chose the sections of the waiting articles; "
                    "they wait for the next digest."
                )
            # The editor's draft goes into the daily digest; what the caller gave comes first.
            draft = editorial.take_draft() if frequency is Frequency.DAILY else editorial.Draft()
            digest.intro = intro if intro is not None else draft.intro
            digest.subject_given = bool(subject or draft.subject)
            inputs = compose.DigestInputs.now()
            digest.inputs = inputs.to_json()
            rendered = compose.digest(
                chosen,
                inputs,
                subject=subject or draft.subject,
                intro=digest.intro,
                archive_url=links.archive_url(digest.id),
                frequency=frequency,
            )
            digest.subject, digest.text_body, digest.html_body, digest.slot_marker = (
                rendered.subject,
                rendered.text,
                rendered.html,
                rendered.slot_marker,
            )
            digest_id = digest.id
    except IntegrityError:
        session.rollback()
        if period is not None and _period_taken(period):
            raise NothingToSend(f"The digest for {period} was already made.") from None
        raise AlreadySending(
            f"A {frequency} digest is being sent right now. Wait until it has finished."
        ) from None
    log.info("digest %s: %d articles; a worker makes its delivery rows", digest_id, taken)
    # Answered now; with a million readers, making every row takes most of a minute.
    jobs.enqueue(jobs.MATERIALIZE, digest_id)
    return digest_id


def _anyone_gets(chosen: list[Article], frequency: Frequency) -> bool:
    """Whether some active reader of this frequency gets at least one of these articles."""
    if any(article.section is None for article in chosen):
        return True  # the front page goes to every reader
    named = [sections.naming(slug) for slug in {a.section for a in chosen if a.section}]
    reader = select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.ACTIVE,
        Subscriber.frequency == frequency,
        or_(Subscriber.sections.is_(None), *named),
    )
    return db.session.scalar(reader.limit(1)) is not None


def _take_in_queued_articles() -> None:
    """Articles the intake worker has not reached yet still make this digest."""
    intake.mark_ready(intake.not_ready_ids())


def _period_taken(period: str) -> bool:
    return db.session.scalar(select(Digest.id).where(Digest.period == period)) is not None


def active_readers(frequency: Frequency) -> int:
    return db.count(
        select(func.count())
        .select_from(Subscriber)
        .where(Subscriber.status == SubscriberStatus.ACTIVE, Subscriber.frequency == frequency)
    )


def waiting_count(frequency: Frequency) -> int:
    """Articles no digest of this frequency has sent yet (those still being taken in too:
    a digest takes them in first)."""
    return db.count(
        select(func.count()).select_from(Article).where(*articles.unsent_for(frequency))
    )


def get_digest(digest_id: int) -> Digest:
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        raise NotFound(f"There is no digest {digest_id}.")
    return digest


def recent_digests(limit: int = 20) -> list[Digest]:
    return list(db.session.scalars(select(Digest).order_by(Digest.id.desc()).limit(limit)))


def digest_articles(digest_id: int) -> list[Article]:
    return list(
        db.session.scalars(
            select(Article).where(articles.in_digest(digest_id)).order_by(Article.id)
        )
    )


def preview(
    sections_key: str = ALL_SECTIONS_KEY, frequency: Frequency = Frequency.DAILY
) -> RenderedEmail | None:
    """The next digest of this frequency as readers with these sections would get it now,
    or None when nothing waits for them."""
    limit = current_app.config["MAILER"].digest_max_articles
    chosen = sections.articles_for(articles.waiting_articles(limit, frequency), sections_key)
    if not chosen:
        return None
    # The editor's draft is the daily digest's; the weekly one is made from the template.
    draft = editorial.draft() if frequency is Frequency.DAILY else editorial.Draft()
    return compose.digest(
        chosen,
        compose.DigestInputs.now(),
        subject=draft.subject,
        intro=draft.intro,
        archive_url=links.archive_url(),
        frequency=frequency,
    )


def failed_deliveries(
    digest_id: int, search: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[tuple[str, str | None, int]], int]:
    """(address, SMTP reply, attempts) of failed or unknown rows, paged; and how many in all."""
    condition = [
        Delivery.digest_id == digest_id,
        Delivery.status.in_((DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)),
    ]
    if search.strip():
        condition.append(Subscriber.email_key.contains(search.strip().lower(), autoescape=True))
    base = select(Subscriber.email, Delivery.smtp_reply, Delivery.attempts).join(
        Subscriber, Subscriber.id == Delivery.subscriber_id
    )
    total = db.count(
        select(func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(*condition)
    )
    rows = db.session.execute(
        base.where(*condition)
        .order_by(Subscriber.email_key)
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page)
    ).all()
    return [(email, reply, attempts) for email, reply, attempts in rows], total
