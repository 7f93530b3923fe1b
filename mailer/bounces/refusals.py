"""Refusals of the sender per receiving domain: what editors are shown instead of readers
marked dead, and the rows they can send again once the cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from mailer.models import Bounce, BounceKind, Delivery, Subscriber
from mailer.platform.db import db

ALERT_MIN = 3  # refusals at one domain before a banner: one or two can be a single mailbox
# Domains looked at on one page view, most refusals first: each is counted against the
# digest's mails to it, so a digest refused by hundreds of small domains stays cheap.
MOST_DOMAINS = 10


@dataclass(frozen=True)
class DomainRefusal:
    domain: str
    reason: str
    refused: int
    rows: int  # the digest's mails to that domain
    words: str  # what the receiving server said, in one of them

    @property
    def share(self) -> float:
        return self.refused / self.rows if self.rows else 0.0


def refusals_of(digest_id: int, share: float) -> list[DomainRefusal]:
    """Receiving domains that refused the sender for at least `share` of the digest's mails
    to them (and ALERT_MIN at least), most refusals first."""
    groups = db.session.execute(
        select(Bounce.domain, Bounce.reason, func.count(), func.max(Bounce.text))
        .where(Bounce.digest_id == digest_id, Bounce.kind == BounceKind.REFUSED)
        .group_by(Bounce.domain, Bounce.reason)
        .having(func.count() >= ALERT_MIN)
        .order_by(func.count().desc())
        .limit(MOST_DOMAINS)
    ).all()
    found = []
    for domain, reason, refused, words in groups:
        if domain is None:
            continue
        rows = _rows_to(digest_id, domain)
        refusal = DomainRefusal(domain, reason or "unknown", refused, rows, words or "")
        if refusal.share >= share:
            found.append(refusal)
    return found


def refused_rows(digest_id: int, domain: str):
    """The digest's delivery rows that a receiving domain refused (a subquery of ids)."""
    return select(Bounce.delivery_id).where(
        Bounce.digest_id == digest_id,
        Bounce.kind == BounceKind.REFUSED,
        Bounce.domain == domain,
        Bounce.delivery_id.is_not(None),
    )


def _rows_to(digest_id: int, domain: str) -> int:
    # One domain of one digest, and only for a domain that refused: its readers by the key.
    return db.count(
        select(func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.digest_id == digest_id,
            Subscriber.email_key.endswith("@" + domain, autoescape=True),
        )
    )
