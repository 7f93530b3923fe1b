"""The reader's side: sign up, confirm (double opt-in), unsubscribe."""

from __future__ import annotations

import functools
import hmac
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from flask import current_app
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from mailer.mail.addresses import Address
from mailer.mail.tokens import ReaderLink
from mailer.models import Subscriber, SubscriberStatus, utcnow
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.errors import NotFound, UserError
from mailer.sections import Choice
from mailer.subscribers import confirmations, records

log = logging.getLogger(__name__)

# A pending reader who signs up again gets the confirmation again, at most this often.
CONFIRMATION_RESEND_INTERVAL = timedelta(hours=1)


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_ACTIVE = "already_active"
    UNSUBSCRIBED = "unsubscribed"


def request_subscription(
    address: Address, name: str | None, *, source: str, choice: Choice | None = None
) -> None:
    """Records a signup and queues the confirmation mail when one is owed.

    The caller learns nothing about the address's previous state: the reader's
    page must look the same for new, pending, active and unsubscribed addresses.
    The choice of sections and frequency is kept for a new reader, or one who signs
    up again; an active reader's choice changes only in their preference center
    (the form is not authenticated: anybody may type anybody's address).
    """
    choice = choice or Choice()
    consent_text = current_app.config["MAILER"].consent_text
    session = db.session
    with db.transaction():
        if records.suppressed([address.key]):
            # A complainer or an erased reader: nothing stored, nothing sent, and the page
            # the caller shows is the same. Only an editor lifts it (records.py).
            log.info("signup of a suppressed address: no confirmation")
            return
        # A new address is one statement; an existing one is left alone by the insert.
        now = utcnow()
        subscriber_id = session.scalar(
            _signup_insert(db.engine.dialect.name),
            {
                "email": address.email,
                "email_key": address.key,
                "name": name,
                "status": SubscriberStatus.PENDING,
                "created_at": now,
                "consent_source": source,
                "consent_text": consent_text,
                "confirmation_requested_at": now,
                "sections": choice.sections,
                "frequency": choice.frequency,
            },
        )
        owed = subscriber_id is not None
        if not owed:
            subscriber = session.scalars(
                select(Subscriber).where(Subscriber.email_key == address.key)
            ).one()
            subscriber_id = subscriber.id
            owed = _request_confirmation_again(subscriber, name, source, consent_text, choice)
    if owed:
        # After the commit: a drain that started before it would not see this reader.
        db.after_commit(confirmations.request_sending)


@functools.cache
def _signup_insert(dialect: str) -> Insert:
    """The signup's INSERT, built once: the busiest public statement, on the Core table
    (the ORM's bulk path costs more than the round trip to the database)."""
    table = cast(Table, Subscriber.__table__)
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    columns = (
        "email",
        "email_key",
        "name",
        "status",
        "created_at",
        "consent_source",
        "consent_text",
        "confirmation_requested_at",
        "sections",
        "frequency",
    )
    return (
        statement.values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(table.c.id)
    )


def _request_confirmation_again(
    subscriber: Subscriber, name: str | None, source: str, consent_text: str, choice: Choice
) -> bool:
    """Inside a transaction: decides whether an existing reader is owed a confirmation."""
    if subscriber.status == SubscriberStatus.ACTIVE:
        return False
    now = utcnow()
    if subscriber.status == SubscriberStatus.BOUNCED and _bounced_recently(subscriber, now):
        return False  # a dead address: mailing it again hurts the whole list's standing
    # A conditional update, so two signups at once queue at most one mail.
    claimed = db.change(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            Subscriber.status == subscriber.status,
            or_(
                Subscriber.status == SubscriberStatus.UNSUBSCRIBED,
                Subscriber.confirmation_requested_at.is_(None),
                Subscriber.confirmation_requested_at < now - CONFIRMATION_RESEND_INTERVAL,
            ),
        )
        .values(
            status=SubscriberStatus.PENDING,
            name=name or subscriber.name,
            consent_source=source,
            consent_text=consent_text,
            confirmation_requested_at=now,
            sections=choice.sections,
            frequency=choice.frequency,
        )
    )
    return claimed == 1


def _bounced_recently(subscriber: Subscriber, now: datetime) -> bool:
    """Within MAILER_BOUNCE_QUARANTINE_DAYS of its bounce; a bounce of unknown date is recent."""
    days = current_app.config["MAILER"].bounce_quarantine_days
    bounced_at = subscriber.bounced_at
    return bounced_at is None or bounced_at > now - timedelta(days=days)


def confirm_subscription(subscriber_id: int) -> ConfirmOutcome:
    """pending -> active; repeats are harmless, an unsubscribed reader stays unsubscribed."""
    session = db.session
    with db.transaction():
        confirmed = db.change(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, Subscriber.status == SubscriberStatus.PENDING)
            .values(status=SubscriberStatus.ACTIVE, confirmed_at=utcnow(), unsubscribed_at=None)
        )
        status = session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber_id))
    if confirmed:
        if current_app.config["MAILER"].welcome_mail:
            jobs.enqueue(jobs.SEND_WELCOME, subscriber_id)  # after the commit, as every task
        return ConfirmOutcome.CONFIRMED
    if status is None:
        raise NotFound("We could not find this subscription. It may have been deleted.")
    if status == SubscriberStatus.ACTIVE:
        return ConfirmOutcome.ALREADY_ACTIVE
    return ConfirmOutcome.UNSUBSCRIBED


def unsubscribe(subscriber_id: int) -> None:
    """Unsubscribes at once; repeats are harmless."""
    session = db.session
    with db.transaction():
        db.change(
            update(Subscriber)
            .where(
                Subscriber.id == subscriber_id,
                Subscriber.status != SubscriberStatus.UNSUBSCRIBED,
            )
            .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=utcnow())
        )
        exists = session.scalar(select(Subscriber.id).where(Subscriber.id == subscriber_id))
    if exists is None:
        raise NotFound("We could not find this subscription. It may already have been deleted.")


def change_choice(subscriber_id: int, choice: Choice) -> bool:
    """The reader's own change of sections and frequency (their preference center).

    Rows of a digest already made keep the mail they were made with: a change takes
    effect from the next run, never half-way through one reader's mail. Returns False
    for a reader who is not subscribed (they sign up again first).
    """
    with db.transaction():
        changed = db.change(
            update(Subscriber)
            .where(
                Subscriber.id == subscriber_id,
                Subscriber.status.in_((SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)),
            )
            .values(sections=choice.sections, frequency=choice.frequency)
        )
    return bool(changed)


def reader_of(link: ReaderLink) -> Subscriber:
    """The reader a link was mailed to. NotFound when they are gone or the link is not theirs,
    so a link can never act for another reader, whatever id it names."""
    subscriber = db.session.get(Subscriber, link.subscriber_id)
    if subscriber is not None and _link_is_theirs(subscriber, link):
        return subscriber
    raise NotFound("We could not find this subscription. It may have been deleted.")


class SignupExpired(UserError):
    status = 410
    title = "This signup has expired"
    offer_signup = True


def signup_of(link: ReaderLink) -> Subscriber:
    """The reader a confirmation link names. A row that is gone is, for such a link, a
    signup nobody confirmed in time (expiry.py deletes those): the page says so."""
    if db.session.get(Subscriber, link.subscriber_id) is None:
        days = current_app.config["MAILER"].pending_expire_days
        raise SignupExpired(
            f"This signup was not confirmed within {days} days, so it expired and the "
            "address was deleted. Nothing will be sent to it. To subscribe, sign up again."
        )
    return reader_of(link)


def _link_is_theirs(subscriber: Subscriber, link: ReaderLink) -> bool:
    if link.key is None:
        return subscriber.legacy_links
    return hmac.compare_digest(subscriber.link_key.encode(), link.key.encode())


def get_subscriber(subscriber_id: int) -> Subscriber:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound("We could not find this subscription. It may have been deleted.")
    return subscriber


def resubscribe(subscriber_id: int, *, source: str) -> None:
    """An unsubscribed reader asks back in: they confirm again, like any signup."""
    with db.transaction():
        subscriber = get_subscriber(subscriber_id)
        address = Address(email=subscriber.email, key=subscriber.email_key)
        name = subscriber.name
        kept = Choice(subscriber.sections, subscriber.frequency)  # as they had chosen
    request_subscription(address, name, source=source, choice=kept)


def count_by_status() -> dict[str, int]:
    rows = db.session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)
    ).all()
    counts = {status.value: 0 for status in SubscriberStatus}
    counts.update({SubscriberStatus(status).value: count for status, count in rows})
    return counts
