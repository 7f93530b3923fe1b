"""Delivery rows as a whole: made, counted, owed, cancelled, retried, and the digest's end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, insert, literal, select, update

from mailer.db import db
from mailer.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    SendClaim,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

MATERIALIZE_CHUNK = 20_000  # subscriber ids per INSERT ... SELECT
# Still owed to its reader: the digest is not done while any row is in one of these.
OWED = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED, DeliveryStatus.RETRYING)
CANCELLED_REPLY = "not sent: the digest was cancelled"


def owed_now(digest_id: int) -> ColumnElement[bool]:
    """Rows a batch may take now: pending, or retrying and due."""
    return (Delivery.digest_id == digest_id) & (
        (Delivery.status == DeliveryStatus.PENDING)
        | ((Delivery.status == DeliveryStatus.RETRYING) & (Delivery.next_attempt_at <= utcnow()))
    )


def materialize(digest_id: int) -> int:
    """(none) -> pending: one row per active reader, set-based, in id ranges. Returns how many.

    Runs inside the caller's transaction, the one that made the digest.
    """
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
    return db.count(
        select(func.count()).select_from(Delivery).where(Delivery.digest_id == digest_id)
    )


def status_counts(digest_id: int) -> dict[DeliveryStatus, int]:
    rows = db.session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)
    )
    return {DeliveryStatus(status): count for status, count in rows}


def count_owed(digest_id: int, *, due_now: bool = False) -> int:
    condition = (
        owed_now(digest_id)
        if due_now
        else ((Delivery.digest_id == digest_id) & Delivery.status.in_(OWED))
    )
    return db.count(select(func.count()).select_from(Delivery).where(condition))


def finish_if_done(digest_id: int) -> bool:
    """The digest: sending -> sent / sent_with_failures, once no row is owed."""
    with db.transaction():
        counts = status_counts(digest_id)
        if any(counts.get(s, 0) for s in OWED):
            return False
        troubled = counts.get(DeliveryStatus.FAILED, 0) + counts.get(DeliveryStatus.UNKNOWN, 0)
        finished = db.change(
            update(Digest)
            .where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING)
            .values(
                status=DigestStatus.SENT_WITH_FAILURES if troubled else DigestStatus.SENT,
                sending_slot=None,
                finished_at=utcnow(),
            )
        )
    return bool(finished)


def skip_unsent(digest_id: int) -> None:
    """pending / retrying -> skipped: a cancel. Claimed rows stop at their batch's next flush."""
    with db.transaction():
        db.change(
            update(Delivery)
            .where(
                Delivery.digest_id == digest_id,
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
            )
            .values(status=DeliveryStatus.SKIPPED, smtp_reply=CANCELLED_REPLY)
        )


def requeue_gave_up(digest_id: int) -> int:
    """failed (temporary refusals only) -> pending, for readers still active. Returns how many.

    Runs inside the caller's transaction, the one that puts the digest back to sending.
    """
    return db.change(
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
    )


def live_claims(digest_id: int, stale_before: datetime) -> int:
    """Batches of this digest whose worker reported since `stale_before`."""
    return db.count(
        select(func.count())
        .select_from(SendClaim)
        .where(
            SendClaim.digest_id == digest_id,
            SendClaim.finished.is_(False),
            SendClaim.heartbeat_at >= stale_before,
        )
    )


def earliest_retry(digest_id: int) -> datetime | None:
    return db.session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.RETRYING
        )
    )
