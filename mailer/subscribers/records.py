"""The editor's view of readers: search, a reader's history, erasure, suppression."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, or_, select, update

from mailer.models import (
    Bounce,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Digest,
    Frequency,
    Subscriber,
    SubscriberStatus,
    Suppression,
    utcnow,
)
from mailer.platform.db import db
from mailer.platform.errors import NotFound

PER_PAGE = 50
EXPORT_COLUMNS = ["email", "name", "status", "consented_at", "sections", "frequency"]


def address_hash(email_key: str) -> str:
    return hashlib.sha256(email_key.encode()).hexdigest()


@dataclass(frozen=True)
class Page:
    readers: list[Subscriber]
    total: int
    page: int
    pages: int


def search(query: str = "", status: str = "", page: int = 1) -> Page:
    conditions = []
    if query.strip():
        conditions.append(Subscriber.email_key.contains(query.strip().lower(), autoescape=True))
    if status:
        conditions.append(Subscriber.status == status)
    readers, total, page, pages = db.newest_page(Subscriber, conditions, page, PER_PAGE)
    return Page(readers, total, page, pages)


@dataclass(frozen=True)
class Event:
    at: datetime
    what: str


def history(subscriber_id: int) -> tuple[Subscriber, list[Event]]:
    """A reader's signup, confirmation, deliveries and unsubscribe, newest first."""
    reader = db.session.get(Subscriber, subscriber_id)
    if reader is None:
        raise NotFound("There is no such reader; they may have been erased.")
    events = [Event(reader.created_at, f"signed up ({reader.consent_source or 'unknown form'})")]
    if reader.confirmed_at:
        events.append(Event(reader.confirmed_at, "confirmed the subscription"))
    if reader.unsubscribed_at:
        events.append(Event(reader.unsubscribed_at, "unsubscribed"))
    rows = db.session.execute(
        select(
            Digest.id,
            Digest.subject,
            Digest.created_at,
            Delivery.status,
            Delivery.sent_at,
            Delivery.smtp_reply,
        )
        .join(Digest, Digest.id == Delivery.digest_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Digest.id.desc())
        .limit(200)
    )
    for digest_id, subject, created, status, sent_at, reply in rows:
        detail = f" ({reply})" if reply else ""
        events.append(
            Event(sent_at or created, f"digest #{digest_id} “{subject}”: {status}{detail}")
        )
    for bounce in db.session.scalars(
        select(Bounce).where(Bounce.subscriber_id == subscriber_id).limit(200)
    ):
        about = f"digest #{bounce.digest_id}" if bounce.digest_id else "the confirmation mail"
        code = f" {bounce.status}" if bounce.status else ""
        what = (
            "complained (marked as spam)"
            if bounce.kind == BounceKind.COMPLAINT
            else (f"{bounce.kind.value} bounce{code}")
        )
        events.append(Event(bounce.received_at, f"{what} for {about}: {bounce.text or ''}"))
    if reader.bounced_at:
        events.append(Event(reader.bounced_at, "marked bounced: never mailed again"))
    events.sort(key=lambda e: e.at, reverse=True)
    return reader, events


def erase(subscriber_id: int) -> None:
    """GDPR erasure: the row and its deliveries go; a hash of the address stays, so
    no import can bring the reader back."""
    with db.transaction():
        reader = db.session.get(Subscriber, subscriber_id)
        if reader is None:
            raise NotFound("There is no such reader; they may have been erased already.")
        digest = address_hash(reader.email_key)
        if not db.session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)):
            db.session.add(Suppression(email_hash=digest, reason="erased by an editor"))
        db.session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
        db.session.delete(reader)


def suppressed(email_keys: list[str]) -> set[str]:
    """Which of these addresses were erased and may not be imported again."""
    by_hash = {address_hash(key): key for key in email_keys}
    found = db.session.scalars(
        select(Suppression.email_hash).where(Suppression.email_hash.in_(list(by_hash)))
    )
    return {by_hash[h] for h in found}


def lift_suppression(email_key: str) -> bool:
    """An editor lets a complainer or an erased reader sign up again (they asked the
    publisher to). Nothing is sent: the reader signs up and confirms like anyone else."""
    with db.transaction():
        lifted = db.change(
            delete(Suppression).where(Suppression.email_hash == address_hash(email_key))
        )
        db.change(
            update(Subscriber).where(Subscriber.email_key == email_key).values(complained_at=None)
        )
    return bool(lifted)


def export_rows() -> Iterator[list[str]]:
    """Every reader as a CSV row (the design's columns), streamed in id order."""
    yield EXPORT_COLUMNS
    query = select(
        Subscriber.email,
        Subscriber.name,
        Subscriber.status,
        Subscriber.confirmed_at,
        Subscriber.sections,
        Subscriber.frequency,
    ).order_by(Subscriber.id)
    for email, name, status, confirmed_at, chosen, frequency in db.session.execute(
        query.execution_options(yield_per=2000)
    ):
        consented = confirmed_at.isoformat() if confirmed_at else ""
        # Sections as space-separated slugs; empty: every section.
        yield [
            spreadsheet_safe(email),
            spreadsheet_safe(name or ""),
            status.value,
            consented,
            (chosen or "").replace(",", " "),
            frequency.value,
        ]


# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """Names come from a public form: a leading quote keeps a cell text, never a formula
    (OWASP's advice for CSV injection). The import takes the quote off again."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def from_spreadsheet(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def _day(column):
    """The UTC calendar day of a timestamp, on SQLite and PostgreSQL alike."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


IMPORT_SOURCE = "import:"  # the consent source of an imported reader: "import:<file name>"


def daily_activity(days: int = 90) -> tuple[list[date], list[int], list[int]]:
    """Days, signups per day and unsubscribes per day, for the last `days` days (UTC)."""
    today = utcnow().date()
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    since = utcnow() - timedelta(days=days)

    def per_day(column, *where) -> dict[str, int]:
        day = _day(column)  # one expression, so GROUP BY repeats it exactly
        query = select(day, func.count()).where(column >= since, *where).group_by(day)
        return {str(day): count for day, count in db.session.execute(query)}

    # An import is not a day's signups (nor, for rows imported as unsubscribed, its
    # unsubscribes): those readers signed up elsewhere, before.
    imported = Subscriber.consent_source.startswith(IMPORT_SOURCE)
    signups = per_day(Subscriber.created_at, or_(Subscriber.consent_source.is_(None), ~imported))
    leaving = per_day(
        Subscriber.unsubscribed_at,
        or_(
            Subscriber.consent_source.is_(None),
            ~imported,
            Subscriber.unsubscribed_at != Subscriber.created_at,
        ),
    )
    return (
        span,
        [signups.get(d.isoformat(), 0) for d in span],
        [leaving.get(d.isoformat(), 0) for d in span],
    )


@dataclass(frozen=True)
class BounceFigures:
    """Bounces and complaints of one digest, as counts and as shares of the mails sent."""

    digest_id: int
    frequency: Frequency
    sent: int
    bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


def last_digest_bounces() -> list[BounceFigures]:
    """The figures of the last finished digest of each frequency, the newest first.

    One per frequency: a weekly digest to a handful of readers must not hide the daily
    digest's bounces that went out the day before it."""
    figures = []
    for frequency in Frequency:
        last = db.session.execute(
            select(Digest.id, Digest.sent_count)
            .where(Digest.finished_at.is_not(None), Digest.frequency == frequency)
            .order_by(Digest.id.desc())
            .limit(1)
        ).first()
        if last is not None:
            figures.append(_bounce_figures(last.id, frequency, last.sent_count))
    return sorted(figures, key=lambda f: f.digest_id, reverse=True)


def _bounce_figures(digest_id: int, frequency: Frequency, sent: int | None) -> BounceFigures:
    if sent is None:  # finished before its tallies were kept on its row
        sent = db.count(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.SENT)
        )
    kinds = dict(
        db.session.execute(
            select(Bounce.kind, func.count(func.distinct(Bounce.subscriber_id)))
            .where(Bounce.digest_id == digest_id)
            .group_by(Bounce.kind)
        ).all()
    )
    bounced = kinds.get(BounceKind.HARD, 0) + kinds.get(BounceKind.SOFT, 0)
    return BounceFigures(digest_id, frequency, sent, bounced, kinds.get(BounceKind.COMPLAINT, 0))


def reactivate(subscriber_id: int) -> bool:
    """An editor vouches for a bounced address again (after a warning): active once more."""
    with db.transaction():
        changed = db.change(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id, Subscriber.status == SubscriberStatus.BOUNCED)
            .values(status=SubscriberStatus.ACTIVE, bounced_at=None)
        )
    return bool(changed)
