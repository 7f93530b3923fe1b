"""The welcome mail, sent once a reader confirms (off with MAILER_WELCOME_MAIL=false).

Claimed like the confirmation mail, so a worker that dies while sending it delays it
by minutes: the reconciler queues again a welcome owed to a reader who confirmed
in the last two days and got none. Imported readers are not welcomed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, or_, select, update

from mailer import mail as emails
from mailer.bounces import processing as bounces
from mailer.mail.smtp import PermanentFailure, TemporaryFailure
from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db

log = logging.getLogger(__name__)

OWED_FOR = timedelta(days=2)  # a welcome later than this would puzzle more than it helps


def _stale_before() -> datetime:
    return utcnow() - timedelta(seconds=current_app.config["MAILER"].claim_stale_seconds)


def _owed() -> ColumnElement[bool]:
    return (
        (Subscriber.status == SubscriberStatus.ACTIVE)
        & Subscriber.confirmed_at.is_not(None)
        & (Subscriber.confirmed_at > utcnow() - OWED_FOR)
        & Subscriber.welcome_sent_at.is_(None)
    )


def _free(stale_before: datetime) -> ColumnElement[bool]:
    return or_(
        Subscriber.welcome_claimed_at.is_(None), Subscriber.welcome_claimed_at < stale_before
    )


def welcomes_owed(limit: int) -> list[int]:
    """Up to `limit` readers whose welcome is owed and nobody is sending, oldest first."""
    if not current_app.config["MAILER"].welcome_mail:
        return []
    stale_before = _stale_before()
    return list(
        db.session.scalars(
            select(Subscriber.id)
            .where(_owed(), _free(stale_before), Subscriber.confirmed_at < stale_before)
            .order_by(Subscriber.confirmed_at)
            .limit(limit)
        )
    )


def send_welcome(subscriber_id: int) -> str:
    """Sends the welcome owed to a reader who just confirmed; safe to run twice."""
    if not current_app.config["MAILER"].welcome_mail:
        return "off"
    now = utcnow()
    with db.transaction():
        claimed = db.change(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, _owed(), _free(_stale_before()))
            .values(welcome_claimed_at=now)
        )
        subscriber = db.session.get(Subscriber, subscriber_id) if claimed else None
    if subscriber is None:
        return "not-owed"
    try:
        emails.send(emails.welcome(subscriber))
    except PermanentFailure as exc:
        _finish(subscriber_id, now, sent=True)
        with db.transaction():
            bounces.record_refusal(subscriber_id, None, None, exc.reply)
        return "refused"
    except TemporaryFailure:
        _finish(subscriber_id, now, sent=False)
        raise
    _finish(subscriber_id, now, sent=True)
    return "sent"


def _finish(subscriber_id: int, claimed_at: datetime, *, sent: bool) -> None:
    values: dict[str, object] = {"welcome_claimed_at": None}
    if sent:
        values["welcome_sent_at"] = utcnow()
    with db.transaction():
        db.change(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, Subscriber.welcome_claimed_at == claimed_at)
            .values(**values)
        )
