"""The digest: take the waiting articles, render once, materialize one delivery per reader."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import css_inline
from flask import current_app
from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from mailer import article_queue, articles, jobs
from mailer.db import db
from mailer.errors import NotFound, UserError
from mailer.mail import render_email
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    SendClaim,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

log = logging.getLogger(__name__)

# Rendered into the bodies once per digest and replaced per reader.
UNSUBSCRIBE_PLACEHOLDER = "__MAILER_UNSUBSCRIBE_URL__"
# Gmail clips HTML bodies over about 102 KB.
HTML_LIMIT_BYTES = 100 * 1024
MATERIALIZE_CHUNK = 20_000  # subscriber ids per INSERT ... SELECT

_inliner = css_inline.CSSInliner(load_remote_stylesheets=False)


class NothingToSend(UserError):
    status = 409
    title = "Nothing new"


class AlreadySending(UserError):
    status = 409
    title = "Already sending"


@dataclass(frozen=True)
class DigestArticle:
    title: str
    url: str
    summary: str
    author: str | None
    published_at: datetime | None


def render_digest(chosen: list[Article]) -> tuple[str, str, str]:
    """(subject, text, html) with the unsubscribe link left as a placeholder."""
    settings = current_app.config["MAILER"]
    ordered = sorted(chosen, key=lambda a: (a.published_at or a.created_at, a.id), reverse=True)
    items = [
        DigestArticle(a.title, a.url, articles.summary_of(a), a.author, a.published_at)
        for a in ordered
    ]
    rendered = render_email(
        "digest",
        articles=items,
        list_name=settings.list_name,
        base_url=settings.base_url,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        date=utcnow(),
    )
    # Inlined once per digest, never per reader; remote stylesheets are not fetched.
    html_body = _inliner.inline(rendered.html)
    if len(html_body.encode()) > HTML_LIMIT_BYTES:
        log.warning("digest HTML is %d bytes; Gmail clips past 102 KB", len(html_body.encode()))
    return rendered.subject, rendered.text, html_body


def create_digest(*, trigger: str, period: str | None = None) -> int:
    """Takes every waiting article up to a watermark and starts sending. Returns the digest id.

    One transaction: two triggers at once make one digest (the other gets
    AlreadySending or NothingToSend), and an article lands in exactly one digest.
    """
    settings = current_app.config["MAILER"]
    _take_in_queued_articles()
    session = db.session
    try:
        with db.transaction():
            waiting = (
                select(Article.id)
                .where(*articles.WAITING)
                .order_by(Article.id)
                .limit(settings.digest_max_articles)
                .subquery()
            )
            watermark = session.scalar(select(func.max(waiting.c.id)))
            if watermark is None:
                raise NothingToSend("There are no new articles since the last digest.")
            digest = Digest(
                status=DigestStatus.SENDING,
                sending_slot=1,
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
            taken = session.execute(
                update(Article)
                .where(*articles.WAITING, Article.id <= watermark)
                .values(digest_id=digest.id)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not taken:
                raise NothingToSend("There are no new articles since the last digest.")
            chosen = list(session.scalars(select(Article).where(Article.digest_id == digest.id)))
            digest.subject, digest.text_body, digest.html_body = render_digest(chosen)
            digest.total = _materialize(digest.id)
            digest_id = digest.id
            total = digest.total
    except IntegrityError:
        session.rollback()
        if period is not None and _period_taken(period):
            raise NothingToSend(f"The digest for {period} was already made.") from None
        raise AlreadySending(
            "A digest is being sent right now. Wait until it has finished."
        ) from None
    log.info("digest %s: %d articles, %d readers", digest_id, taken, total)
    if total == 0:
        finish_if_done(digest_id)
    else:
        enqueue_batches(digest_id, total)
    return digest_id


def _take_in_queued_articles() -> None:
    """Articles the intake worker has not reached yet still make this digest."""
    article_queue.mark_ready(article_queue.not_ready_ids())


def _period_taken(period: str) -> bool:
    return db.session.scalar(select(Digest.id).where(Digest.period == period)) is not None


def _materialize(digest_id: int) -> int:
    """One delivery row per active reader, set-based, in id ranges so no list is held."""
    session = db.session
    low, high = session.execute(
        select(func.min(Subscriber.id), func.max(Subscriber.id)).where(
            Subscriber.status == SubscriberStatus.ACTIVE
        )
    ).one()
    if low is None:
        return 0
    for start in range(low, high + 1, MATERIALIZE_CHUNK):
        readers = select(
            literal(digest_id), Subscriber.id, literal(DeliveryStatus.PENDING.value), literal(0)
        ).where(
            Subscriber.status == SubscriberStatus.ACTIVE,
            Subscriber.id >= start,
            Subscriber.id < start + MATERIALIZE_CHUNK,
        )
        session.execute(
            insert(Delivery).from_select(
                ["digest_id", "subscriber_id", "status", "attempts"], readers
            )
        )
    # Counted, not summed from rowcount: drivers may report -1 for INSERT ... SELECT.
    return session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.digest_id == digest_id)
    )


def enqueue_batches(digest_id: int, rows: int) -> None:
    """Fans out enough batch tasks for `rows` deliveries; extra tasks find nothing and end."""
    batch_size = current_app.config["MAILER"].send_batch_size
    for _ in range(-(-rows // batch_size)):
        jobs.enqueue(jobs.SEND_BATCH, digest_id)


OWED = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED, DeliveryStatus.RETRYING)
CANCELLED_REPLY = "not sent: the digest was cancelled"


def finish_if_done(digest_id: int) -> bool:
    """sending -> sent / sent_with_failures once no delivery is owed."""
    session = db.session
    with db.transaction():
        counts = _status_counts(digest_id)
        if any(counts.get(s, 0) for s in OWED):
            return False
        troubled = counts.get(DeliveryStatus.FAILED, 0) + counts.get(DeliveryStatus.UNKNOWN, 0)
        finished = session.execute(
            update(Digest)
            .where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING)
            .values(
                status=DigestStatus.SENT_WITH_FAILURES if troubled else DigestStatus.SENT,
                sending_slot=None,
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    return bool(finished)


def _status_counts(digest_id: int) -> dict[DeliveryStatus, int]:
    rows = db.session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)
    )
    return {DeliveryStatus(status): count for status, count in rows}


def get_digest(digest_id: int) -> Digest:
    digest = db.session.get(Digest, digest_id)
    if digest is None:
        raise NotFound(f"There is no digest {digest_id}.")
    return digest


def progress(digest_id: int) -> dict[str, object]:
    """Status and counts of one digest, for the API and the editor's progress bar."""
    digest = get_digest(digest_id)
    counts = _status_counts(digest_id)
    sent = counts.get(DeliveryStatus.SENT, 0)
    end = digest.finished_at or utcnow()
    elapsed = max((end - digest.created_at).total_seconds(), 1e-6)
    status = digest.status.value
    if digest.cancelled_at:
        status = "cancelled" if digest.status != DigestStatus.SENDING else "cancelling"
    elif digest.paused_at and digest.status == DigestStatus.SENDING:
        status = "paused"
    return {
        "id": digest.id,
        "status": status,
        "subject": digest.subject,
        "articles": db.session.scalar(
            select(func.count()).select_from(Article).where(Article.digest_id == digest_id)
        ),
        "total": digest.total,
        "sent": sent,
        "failed": counts.get(DeliveryStatus.FAILED, 0),
        "retrying": counts.get(DeliveryStatus.RETRYING, 0),
        "unknown": counts.get(DeliveryStatus.UNKNOWN, 0),
        "skipped": counts.get(DeliveryStatus.SKIPPED, 0),
        "pending": counts.get(DeliveryStatus.PENDING, 0) + counts.get(DeliveryStatus.CLAIMED, 0),
        "started": digest.created_at.isoformat(),
        "finished": digest.finished_at.isoformat() if digest.finished_at else None,
        "messages_per_second": round(sent / elapsed, 1) if sent else 0.0,
    }


def sending_digests() -> list[int]:
    """Digests still sending and not paused by an editor."""
    return list(
        db.session.scalars(
            select(Digest.id).where(
                Digest.status == DigestStatus.SENDING, Digest.paused_at.is_(None)
            )
        )
    )


class NotSending(UserError):
    status = 409
    title = "Not sending"


def _set_sending_flag(digest_id: int, **values: object) -> None:
    with db.transaction():
        changed = db.session.execute(
            update(Digest)
            .where(
                Digest.id == digest_id,
                Digest.status == DigestStatus.SENDING,
                Digest.cancelled_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    if not changed:
        raise NotSending("This digest is not sending any more.")


def pause_digest(digest_id: int) -> None:
    """No new batch starts; batches under way stop at their next flush, within a second."""
    _set_sending_flag(digest_id, paused_at=utcnow())


def resume_digest(digest_id: int) -> None:
    _set_sending_flag(digest_id, paused_at=None, last_enqueued_at=utcnow())
    owed = db.session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.digest_id == digest_id, Delivery.status.in_(OWED))
    )
    enqueue_batches(digest_id, owed)


def cancel_digest(digest_id: int) -> None:
    """Every row not yet sent is skipped; the digest ends once running batches stop."""
    _set_sending_flag(digest_id, cancelled_at=utcnow(), paused_at=None)
    with db.transaction():
        db.session.execute(
            update(Delivery)
            .where(
                Delivery.digest_id == digest_id,
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
            )
            .values(status=DeliveryStatus.SKIPPED, smtp_reply=CANCELLED_REPLY)
            .execution_options(synchronize_session=False)
        )
    finish_if_done(digest_id)


def retry_failed(digest_id: int) -> int:
    """Sends again the rows that failed only on temporary refusals, to readers still active."""
    session = db.session
    try:
        with db.transaction():
            digest = get_digest(digest_id)
            if digest.status == DigestStatus.SENDING:
                raise AlreadySending("This digest is still sending.")
            retried = session.execute(
                update(Delivery)
                .where(
                    Delivery.digest_id == digest_id,
                    Delivery.status == DeliveryStatus.FAILED,
                    Delivery.gave_up.is_(True),
                    Delivery.subscriber_id.in_(
                        select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE)
                    ),
                )
                .values(status=DeliveryStatus.PENDING, attempts=0, gave_up=False, claim_id=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not retried:
                raise NothingToSend("No failed delivery of this digest is worth retrying.")
            digest.status = DigestStatus.SENDING
            digest.sending_slot = 1  # one digest sends at a time, retries included
            digest.finished_at = None
            digest.last_enqueued_at = utcnow()
            session.flush()
    except IntegrityError:
        raise AlreadySending("Another digest is being sent right now.") from None
    enqueue_batches(digest_id, retried)
    return retried


def live_claims(digest_id: int, stale_before: datetime) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(SendClaim)
        .where(
            SendClaim.digest_id == digest_id,
            SendClaim.finished.is_(False),
            SendClaim.heartbeat_at >= stale_before,
        )
    )


def recent_digests(limit: int = 20) -> list[Digest]:
    return list(db.session.scalars(select(Digest).order_by(Digest.id.desc()).limit(limit)))


def digest_articles(digest_id: int) -> list[Article]:
    return list(
        db.session.scalars(
            select(Article).where(Article.digest_id == digest_id).order_by(Article.id)
        )
    )


def preview() -> tuple[str, str, str] | None:
    """The next digest as readers would get it now, or None when nothing waits."""
    chosen = articles.waiting_articles(current_app.config["MAILER"].digest_max_articles)
    return render_digest(chosen) if chosen else None


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
    total = db.session.scalar(
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
    return [tuple(r) for r in rows], total
