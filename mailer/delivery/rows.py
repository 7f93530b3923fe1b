"""Delivery rows as a whole: made, counted, owed, cancelled, retried, and the digest's end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Exists, exists, func, literal, select, update

from mailer.content import articles
from mailer.digests import segments, states
from mailer.models import (
    ALL_SECTIONS_KEY,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestSegment,
    DigestStatus,
    SendClaim,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.platform.db import db

MATERIALIZE_CHUNK = 20_000  # subscriber ids per INSERT ... SELECT
# Still owed to its reader: the digest is not done while any row is in one of these.
OWED = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED, DeliveryStatus.RETRYING)
CANCELLED_REPLY = "not sent: the digest was cancelled"


def pending_rows(digest_id: int) -> ColumnElement[bool]:
    return (Delivery.digest_id == digest_id) & (Delivery.status == DeliveryStatus.PENDING)


def due_retrying(digest_id: int) -> ColumnElement[bool]:
    return (
        (Delivery.digest_id == digest_id)
        & (Delivery.status == DeliveryStatus.RETRYING)
        & (Delivery.next_attempt_at <= utcnow())
    )


def owed_now(digest_id: int) -> ColumnElement[bool]:
    """Rows a batch may take now: pending, or retrying and due."""
    return pending_rows(digest_id) | due_retrying(digest_id)


FIRST_CHUNK = 1_000  # small, so the first mails leave within a second of the trigger
# Passes over a chunk's readers whose set of sections has no segment yet (see _make_rows).
MAX_PASSES = 3


@dataclass(frozen=True)
class Chunk:
    rows: int  # delivery rows made by this chunk
    done: bool  # every active reader has a row now (or the digest was cancelled)
    first_id: int | None = None  # the lowest delivery id made by this chunk


def materialize_chunk(digest_id: int) -> Chunk:
    """(none) -> pending for the next range of subscriber ids: one INSERT ... SELECT, one
    transaction. Safe to run twice at once: the range is taken by a conditional update."""
    session = db.session
    with db.transaction():
        digest = session.get(Digest, digest_id)
        if digest is None:
            return Chunk(0, True)
        if digest.materialized_at is not None:
            return Chunk(0, True)
        start = digest.materialized_up_to
        highest = session.scalar(
            select(func.max(Subscriber.id)).where(Subscriber.status == SubscriberStatus.ACTIVE)
        )
        size = FIRST_CHUNK if start == 0 else MATERIALIZE_CHUNK
        end = start + size
        cancelled = digest.status in (DigestStatus.CANCELLING, DigestStatus.CANCELLED)
        done = cancelled or highest is None or end >= highest
        rows, first_id, nothing_new = 0, None, 0
        if not cancelled and highest is not None and start < highest:
            rows, first_id, nothing_new = _make_rows(digest, start, end)
        taken = db.change(
            update(Digest)
            .where(Digest.id == digest_id, Digest.materialized_up_to == start)
            .values(
                materialized_up_to=end,
                total=Digest.total + rows,
                nothing_new=Digest.nothing_new + nothing_new,
                last_enqueued_at=utcnow(),
                materialized_at=utcnow() if done else None,
            )
        )
        if not taken:  # another materializer made this range first: ours is undone
            raise _RangeTaken
    return Chunk(rows, done, first_id)


def _make_rows(digest: Digest, start: int, end: int) -> tuple[int, int | None, int]:
    """One pending row per active reader of the digest's frequency in (start, end], each
    with the segment of their sections; readers whose sections have nothing new get none.
    Returns (rows made, lowest id made, readers with nothing new)."""
    session = db.session
    in_range = (
        Subscriber.status == SubscriberStatus.ACTIVE,
        Subscriber.frequency == digest.frequency,
        Subscriber.id > start,
        Subscriber.id <= end,
    )
    key = func.coalesce(Subscriber.sections, ALL_SECTIONS_KEY)
    segment = (DigestSegment.digest_id == digest.id) & (DigestSegment.sections_key == key)
    has_row = exists().where(
        Delivery.digest_id == digest.id, Delivery.subscriber_id == Subscriber.id
    )
    readers = (
        select(
            literal(digest.id),
            Subscriber.id,
            literal(DeliveryStatus.PENDING.value),
            literal(0),
            DigestSegment.id,
        )
        .join(DigestSegment, segment)
        .where(*in_range, DigestSegment.articles > 0)
        # Ids follow segments, so a batch (the lowest ids owed) holds one or two segments'
        # readers and prepares one or two messages, not one per set of sections.
        .order_by(DigestSegment.id, Subscriber.id)
    )
    # Readers' keys are read, their segments made, then rows inserted by key. A reader who
    # changes their choice in between has a key with no segment yet: another pass makes it.
    without_segment = select(key).where(*in_range, ~has_row, ~exists().where(segment)).distinct()
    keys = list(session.scalars(without_segment))
    for _pass in range(MAX_PASSES):
        segments.make_missing(digest, keys)
        # Two materializers at once both make the range; the watermark keeps one.
        session.execute(
            db.insert(Delivery)
            .from_select(
                ["digest_id", "subscriber_id", "status", "attempts", "segment_id"], readers
            )
            .on_conflict_do_nothing()
        )
        keys = list(session.scalars(without_segment))
        if not keys:
            break
    # Counted, not taken from rowcount: drivers may give -1 for INSERT ... SELECT.
    made = session.execute(
        select(func.count(), func.min(Delivery.id)).where(
            Delivery.digest_id == digest.id,
            Delivery.subscriber_id > start,
            Delivery.subscriber_id <= end,
        )
    ).one()
    nothing_new = db.count(
        select(func.count())
        .select_from(Subscriber)
        .join(DigestSegment, segment)
        .where(*in_range, ~has_row, DigestSegment.articles == 0)
    )
    return made[0], made[1], nothing_new


class _RangeTaken(Exception):
    """Rolls back a chunk that another materializer made at the same time."""


def materialize_next(digest_id: int) -> Chunk:
    try:
        return materialize_chunk(digest_id)
    except _RangeTaken:
        return Chunk(0, False)


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
    """The digest: in flight -> finished (digests.states.finish), once every row is made
    and none is owed.

    One statement decides, so no row made or claimed meanwhile can be missed (a count
    first and an update after could see the rows before a materializer committed them
    and the "all made" mark after).
    """

    def rows_of(*statuses: DeliveryStatus) -> Exists:
        return exists().where(Delivery.digest_id == digest_id, Delivery.status.in_(statuses))

    with db.transaction():
        finished = states.finish(
            digest_id,
            done=Digest.materialized_at.is_not(None) & ~rows_of(*OWED),
            failures=rows_of(DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN),
        )
        if finished:
            # Nothing is owed any more, so these counts are final until an editor retries.
            counts = status_counts(digest_id)
            db.change(
                update(Digest)
                .where(Digest.id == digest_id)
                .values(
                    sent_count=counts.get(DeliveryStatus.SENT, 0),
                    failed_count=counts.get(DeliveryStatus.FAILED, 0),
                    unknown_count=counts.get(DeliveryStatus.UNKNOWN, 0),
                    skipped_count=counts.get(DeliveryStatus.SKIPPED, 0),
                )
            )
            _give_back_if_nothing_was_tried(digest_id, counts)
    return bool(finished)


def _give_back_if_nothing_was_tried(digest_id: int, counts: dict[DeliveryStatus, int]) -> None:
    """A digest cancelled before any of its mail was tried (every row skipped) used up no
    article: they wait for the next digest, which would otherwise never carry them. Once
    one mail was tried (sent, failed, or unknown), they stay: someone may have them."""
    digest = db.session.get(Digest, digest_id)
    if digest is None or digest.cancelled_at is None:
        return
    if any(n for status, n in counts.items() if status != DeliveryStatus.SKIPPED):
        return
    articles.give_back(digest_id, digest.frequency)


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
