"""The confirmation mail: claimed, noted on the wire, sent, and sent again if its worker died.

A confirmation is owed while `confirmation_requested_at` is later than
`confirmation_sent_at`. A task claims it (`confirmation_claimed_at`), notes in
Redis that it is on the wire, sends, and marks it sent. If the worker dies, the
claim goes stale after MAILER_CLAIM_STALE_SECONDS (so does a request no task
took) and the reconciler queues the mail again: the reader waits minutes, not
until they sign up again. A mail that was on the wire when its worker died is
sent again: a second confirmation harms nobody, a missing one loses the reader.

A signup does not queue a task of its own: it asks for a drain (one Redis command,
and a task only when none is queued), and the drain sends every confirmation
requested in the last minutes, oldest first. Publishing a Celery task was an eighth
of a signup's time; under a rush of signups one drain serves them all.

Each mail takes a place in the hour's budget first (subscribers/confirmations.py).
Over budget, the claim is given back and the mail stays owed: the drain stops, and the
reconciler queues no more than the places the hour has left.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import ColumnElement, or_, select, update

from mailer import mail as emails
from mailer.bounces import processing as bounces
from mailer.mail.smtp import PermanentFailure, TemporaryFailure
from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.redis_client import redis_client
from mailer.subscribers.confirmations import DRAIN_FLAG, request_sending, take_budget_place

log = logging.getLogger(__name__)

NOTE_TTL = 7 * 86400
DRAIN_BATCH = 100
DRAIN_SECONDS = 50.0  # then a fresh task goes on, well inside the task's time limit
RETRY_SECONDS = 30
OVER_BUDGET = "over-budget"


def _stale_before() -> datetime:
    return utcnow() - timedelta(seconds=current_app.config["MAILER"].claim_stale_seconds)


def _owed() -> ColumnElement[bool]:
    return (
        (Subscriber.status == SubscriberStatus.PENDING)
        & Subscriber.confirmation_requested_at.is_not(None)
        & or_(
            Subscriber.confirmation_sent_at.is_(None),
            Subscriber.confirmation_sent_at < Subscriber.confirmation_requested_at,
        )
    )


def _free(stale_before: datetime) -> ColumnElement[bool]:
    """Not claimed, or claimed by a task that has not finished in time: its worker died."""
    return or_(
        Subscriber.confirmation_claimed_at.is_(None),
        Subscriber.confirmation_claimed_at < stale_before,
    )


def confirmations_owed(limit: int) -> list[int]:
    """Up to `limit` pending readers whose confirmation is neither sent nor being sent, a
    while after it was requested (until then, the drain has it), oldest first."""
    max_age = timedelta(days=current_app.config["MAILER"].confirm_max_age_days)
    stale_before = _stale_before()
    return list(
        db.session.scalars(
            select(Subscriber.id)
            .where(
                _owed(),
                _free(stale_before),
                Subscriber.confirmation_requested_at < stale_before,
                Subscriber.confirmation_requested_at > utcnow() - max_age,
            )
            .order_by(Subscriber.confirmation_requested_at)
            .limit(limit)
        )
    )


def send_recent_confirmations() -> int:
    """The drain: every confirmation owed and requested within the claim window, oldest
    first, each once. Older ones are the reconciler's. Returns how many it handled."""
    # Cleared first: a signup committed after this line queues the next drain, one
    # committed before it is found by the query below.
    with contextlib.suppress(redis.RedisError):
        redis_client().delete(DRAIN_FLAG)
    began = time.monotonic()
    last_id, handled = 0, 0
    while time.monotonic() - began < DRAIN_SECONDS:
        stale_before = _stale_before()
        ids = list(
            db.session.scalars(
                select(Subscriber.id)
                .where(
                    _owed(),
                    _free(stale_before),
                    Subscriber.confirmation_requested_at >= stale_before,
                    Subscriber.id > last_id,
                )
                .order_by(Subscriber.id)
                .limit(DRAIN_BATCH)
            )
        )
        db.session.rollback()  # no transaction held while mail goes out
        if not ids:
            return handled
        for subscriber_id in ids:
            last_id = subscriber_id
            handled += 1
            try:
                outcome = send_confirmation(subscriber_id)
            except TemporaryFailure:
                # Its own task retries it with backoff; the drain goes on with the others.
                jobs.enqueue_in(jobs.SEND_CONFIRMATION, RETRY_SECONDS, subscriber_id)
                continue
            if outcome == OVER_BUDGET:
                return handled  # the rest stay owed: the reconciler's, as places free up
    request_sending()  # out of time with more to do: a fresh task goes on
    return handled


class _Note:
    """The Redis note that a confirmation is on the wire; without Redis, sending goes on."""

    def __init__(self, subscriber_id: int) -> None:
        self.key = f"mailer:confirmation:{subscriber_id}:on-the-wire"

    def was_left(self) -> bool:
        try:
            return bool(redis_client().exists(self.key))
        except redis.RedisError:
            return False

    def write(self) -> None:
        try:
            redis_client().set(self.key, 1, ex=NOTE_TTL)
        except redis.RedisError as exc:
            log.warning("confirmation note not written (%s); sending anyway", exc)

    def clear(self) -> None:
        with contextlib.suppress(redis.RedisError):  # it expires by itself
            redis_client().delete(self.key)


def send_confirmation(subscriber_id: int) -> str:
    """Sends the confirmation mail owed to a pending reader; safe to run twice."""
    now = utcnow()
    with db.transaction():
        claimed = db.change(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, _owed(), _free(_stale_before()))
            .values(confirmation_claimed_at=now)
        )
        subscriber = db.session.get(Subscriber, subscriber_id) if claimed else None
    if subscriber is None:
        return "not-owed"
    if not take_budget_place():
        _finish(subscriber_id, now, sent_at=None)  # still owed, free for a later task
        return OVER_BUDGET
    requested_at = subscriber.confirmation_requested_at
    note = _Note(subscriber_id)
    if note.was_left():
        log.warning(
            "confirmation for subscriber %s was on the wire when its worker died; sending it again",
            subscriber_id,
        )
    note.write()
    try:
        emails.send(emails.confirmation(subscriber))
    except PermanentFailure as exc:
        log.warning("confirmation for subscriber %s refused: %s", subscriber_id, exc.reply)
        _finish(subscriber_id, now, sent_at=requested_at)  # nothing more to try
        with db.transaction():
            bounces.record_refusal(subscriber_id, None, None, exc.reply)
        note.clear()
        return "refused"
    except TemporaryFailure:
        _finish(subscriber_id, now, sent_at=None)  # given back: the retry (or reconciler) sends
        note.clear()
        raise
    _finish(subscriber_id, now, sent_at=requested_at)
    note.clear()
    return "sent"


def _finish(subscriber_id: int, claimed_at: datetime, *, sent_at: datetime | None) -> None:
    """Ends this task's claim; with sent_at, the request it answered is no longer owed."""
    values: dict[str, object] = {"confirmation_claimed_at": None}
    if sent_at is not None:
        values["confirmation_sent_at"] = sent_at
    with db.transaction():
        db.change(
            update(Subscriber)
            .where(
                Subscriber.id == subscriber_id,
                Subscriber.confirmation_claimed_at == claimed_at,  # still our claim
            )
            .values(**values)
        )
