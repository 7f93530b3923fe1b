"""What an editor does to a digest besides making it: test it, pause, resume, cancel, retry."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mailer import delivery
from mailer import mail as emails
from mailer.bounces import refusals
from mailer.digests import states
from mailer.digests.runs import AlreadySending, NothingToSend, get_digest, preview
from mailer.models import Delivery, DeliveryStatus, DigestStatus, Subscriber, SubscriberStatus
from mailer.platform.db import db
from mailer.platform.errors import UserError


class NotSending(UserError):
    status = 409
    title = "Not sending"


def send_test(address: str, requested_by: str) -> bool:
    """Mails the next digest to one address, marked as a test; no delivery row, not counted.

    False when no article is waiting."""
    rendered = preview()
    if rendered is None:
        return False
    # A reader's own address gets a link that works for them; any other, a test page.
    reader = db.session.execute(
        select(Subscriber.id, Subscriber.link_key).where(Subscriber.email_key == address.lower())
    ).first()
    link_key = (reader.id, reader.link_key) if reader else None
    emails.send(emails.test_digest(rendered, address, link_key, requested_by))
    return True


def _require(moved: bool) -> None:
    if not moved:
        raise NotSending("This digest is not sending any more.")


def pause_digest(digest_id: int) -> None:
    """No new batch starts; batches under way stop at their next flush, within a second."""
    with db.transaction():
        _require(states.pause(digest_id))


def resume_digest(digest_id: int) -> None:
    with db.transaction():
        _require(states.resume(digest_id))
    delivery.enqueue_batches(digest_id, delivery.count_owed(digest_id))


def cancel_digest(digest_id: int) -> None:
    """Every row not yet sent is skipped; the digest ends once running batches stop."""
    with db.transaction():
        _require(states.cancel(digest_id))
    delivery.skip_unsent(digest_id)
    delivery.finish_if_done(digest_id)


def retry_refused(digest_id: int, domain: str) -> int:
    """Sends again the mails one receiving domain refused (a blocklisting, now lifted), to
    readers still active; the digest sends again if it had finished."""
    try:
        with db.transaction():
            digest = get_digest(digest_id)
            if digest.status == DigestStatus.CANCELLED:
                raise NothingToSend("This digest was cancelled; it is not sent again.")
            retried = db.change(
                update(Delivery)
                .where(
                    Delivery.digest_id == digest_id,
                    Delivery.status == DeliveryStatus.FAILED,
                    Delivery.id.in_(refusals.refused_rows(digest_id, domain)),
                    Delivery.subscriber_id.in_(
                        select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE)
                    ),
                )
                .values(status=DeliveryStatus.PENDING, attempts=0, gave_up=False, claim_id=None)
            )
            if not retried:
                raise NothingToSend(f"No mail {domain} refused is waiting to be sent again.")
            if digest.status not in states.IN_FLIGHT:
                states.reopen(digest)
    except IntegrityError:
        raise AlreadySending("Another digest is being sent right now.") from None
    delivery.enqueue_batches(digest_id, retried)
    return retried


def retry_failed(digest_id: int) -> int:
    """Sends again the rows that failed only on temporary refusals, to readers still active."""
    try:
        with db.transaction():
            digest = get_digest(digest_id)
            if digest.status in states.IN_FLIGHT:
                raise AlreadySending("This digest is still sending.")
            if digest.status == DigestStatus.CANCELLED:
                raise NothingToSend("This digest was cancelled; it is not sent again.")
            retried = delivery.requeue_gave_up(digest_id)
            if not retried:
                raise NothingToSend("No failed delivery of this digest is worth retrying.")
            states.reopen(digest)
    except IntegrityError:
        raise AlreadySending("Another digest is being sent right now.") from None
    delivery.enqueue_batches(digest_id, retried)
    return retried
