"""Pending readers who never confirmed expire: a stranger's address is not kept forever.

Run by the reconciler. MAILER_PENDING_EXPIRE_DAYS after the last signup of a pending
address, a row that was never a reader (never confirmed, never unsubscribed) is deleted
with its bounces; one with a past (a reader who left and signed up again, and did not
confirm this time) goes back to `unsubscribed`, so it stays on record and no import
brings it back. Its confirmation link then says the signup expired.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, delete, func, select, update

from mailer.models import Bounce, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db

BATCH = 1000  # rows per run, so one run is short whatever was left to expire


def _expired():
    cutoff = utcnow() - timedelta(days=current_app.config["MAILER"].pending_expire_days)
    return and_(
        Subscriber.status == SubscriberStatus.PENDING,
        func.coalesce(Subscriber.confirmation_requested_at, Subscriber.created_at) < cutoff,
    )


def expire_pending() -> int:
    """Deletes (or, for former readers, unsubscribes again) expired pending rows."""
    with db.transaction():
        strangers = list(
            db.session.scalars(
                select(Subscriber.id)
                .where(
                    _expired(),
                    Subscriber.confirmed_at.is_(None),
                    Subscriber.unsubscribed_at.is_(None),
                )
                .limit(BATCH)
            )
        )
        if strangers:
            db.change(delete(Bounce).where(Bounce.subscriber_id.in_(strangers)))
            db.change(delete(Subscriber).where(Subscriber.id.in_(strangers)))
        former = db.change(
            update(Subscriber)
            .where(_expired())
            .values(
                status=SubscriberStatus.UNSUBSCRIBED,
                unsubscribed_at=func.coalesce(Subscriber.unsubscribed_at, utcnow()),
                confirmation_claimed_at=None,
            )
        )
    return len(strangers) + former
