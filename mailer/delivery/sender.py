"""The send loop: one batch task claims rows, sends each once, and records every outcome."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from mailer import mail as emails
from mailer.delivery.claims import Recipient, claim_rows, halt_status, open_claim
from mailer.delivery.journal import Journal
from mailer.delivery.lease import ClaimLease, ClaimTaken
from mailer.delivery.ledger import MAX_RETRY_COUNTDOWN, Ledger
from mailer.delivery.rate import SendRate
from mailer.delivery.rows import earliest_retry, finish_if_done
from mailer.digests import segments
from mailer.mail.smtp import (
    ConnectFailure,
    PermanentFailure,
    SMTPConnection,
    TemporaryFailure,
    smtp_connection,
)
from mailer.mail.verp import MailKind, MailRef
from mailer.models import DeliveryStatus, Digest, DigestSegment, utcnow
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.redis_client import redis_client
from mailer.platform.settings import Settings


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    sent: int
    failed: int
    retrying: int
    retry_in: float | None  # seconds until the earliest retry is due


def enqueue_batches(digest_id: int, rows: int, *, first_id: int | None = None) -> None:
    """Fans out enough batch tasks for `rows` deliveries; extra tasks find nothing and end.

    Rows just made (ids from `first_id` on) give each task where its rows start: a hint
    that keeps each claim to its own rows (see claims.claim_rows).
    """
    batch_size = current_app.config["MAILER"].send_batch_size
    for n in range(-(-rows // batch_size)):
        if first_id is None:
            jobs.enqueue(jobs.SEND_BATCH, digest_id)
        else:
            jobs.enqueue(jobs.SEND_BATCH, digest_id, first_id + n * batch_size)


def schedule_retry(digest_id: int, countdown: float) -> None:
    """One retry task per digest and due time, however many batches ask for it."""
    key = f"mailer:retry-scheduled:{digest_id}"
    try:
        fresh = redis_client().set(key, 1, nx=True, px=max(1, int(countdown * 1000)))
    except redis.RedisError:
        fresh = True  # without Redis there is no queue either; the reconciler will see
    if fresh:
        jobs.enqueue_in(jobs.SEND_BATCH, countdown, digest_id)


class DigestCopies:
    """Each reader's copy of one digest: each segment (the mail for one set of sections)
    serialized once per batch, and only the reader's own parts spliced in."""

    def __init__(self, settings: Settings, digest: Digest, segment_ids: set[int | None]) -> None:
        # Plain values only: the ORM rows expire once the read transaction ends.
        self.settings = settings
        self.digest_id = digest.id
        self.newsletters: dict[int | None, emails.Newsletter] = {}
        for segment_id in segment_ids:
            # A row made before segments existed is sent the whole digest.
            segment = db.session.get_one(DigestSegment, segment_id) if segment_id else None
            rendered = segments.rendered(segment) if segment else emails.stored_digest(digest)
            self.newsletters[segment_id] = emails.Newsletter(rendered, digest_id=digest.id)

    def build(self, recipient: Recipient) -> emails.OutgoingMail:
        message_id = emails.digest_message_id(self.settings, recipient.delivery_id)
        reader = (recipient.subscriber_id, recipient.link_key)
        bounces_for = MailRef(MailKind.DELIVERY, recipient.delivery_id)
        newsletter = self.newsletters[recipient.segment_id]
        return newsletter.copy_for(recipient.email, reader, message_id, bounces_for)


def send_batch(digest_id: int, from_id: int | None = None) -> BatchResult:
    """Claims one batch of a digest's owed deliveries (from `from_id` on, if there are
    enough there) and sends them."""
    settings: Settings = current_app.config["MAILER"]
    claim_id = open_claim(digest_id)
    if claim_id is None:
        return BatchResult(0, 0, 0, 0, None)
    journal = Journal(redis_client(), claim_id)
    journal.open()
    ledger = Ledger(claim_id, digest_id, settings)
    recipients: list[Recipient] = []
    with ClaimLease(db.engine, settings, claim_id) as lease:
        try:
            recipients = claim_rows(claim_id, digest_id, settings.send_batch_size, from_id)
            if recipients:
                digest = db.session.get_one(Digest, digest_id)
                copies = DigestCopies(settings, digest, {r.segment_id for r in recipients})
                db.session.rollback()  # end the read before sending; nothing is held open
                try:
                    _send_all(recipients, copies, journal, ledger, lease, smtp_connection())
                finally:
                    journal.close()
            ledger.flush(finished=True)
        except ClaimTaken:
            # Recovery settled this claim from its journal; its rows are others' now.
            db.session.rollback()
            lease.mark_taken()
            totals = ledger.totals
            return BatchResult(len(recipients), totals.sent, totals.failed, totals.retrying, None)
    journal.discard()
    retry_in = _retry_in(digest_id)
    finish_if_done(digest_id)
    totals = ledger.totals
    return BatchResult(len(recipients), totals.sent, totals.failed, totals.retrying, retry_in)


def _send_all(
    recipients: list[Recipient],
    copies: DigestCopies,
    journal: Journal,
    ledger: Ledger,
    lease: ClaimLease,
    connection: SMTPConnection,
) -> None:
    per_second = copies.settings.send_rate_per_second
    rate = SendRate(per_second) if per_second else None
    on_wire = 0  # the row being sent
    unrecorded: int | None = None  # sent, not yet in the journal

    def note_on_wire() -> None:
        # Called by the SMTP session while the relay answers the envelope, before the
        # body (which alone lets it accept the message): the write-ahead's round trip
        # runs alongside the relay's. Cleared only once noted, so a send that fails
        # before this leaves the row before it to the next note or the last.
        nonlocal unrecorded
        journal.attempting(on_wire, sent_before=unrecorded)
        unrecorded = None

    for index, recipient in enumerate(recipients):
        if rate is not None:
            rate.wait_for_slot()
        try:
            connection.ready()
        except ConnectFailure:
            # The relay is unreachable: nothing from here on was attempted, so it stays owed.
            ledger.release(recipients[index:])
            break
        if not lease.holds():
            # The fence: this message might not end before recovery could take the claim.
            ledger.halt(recipients[index:], DeliveryStatus.PENDING)
            break
        mail = copies.build(recipient)
        on_wire = recipient.delivery_id
        try:
            connection.send(mail.recipient, mail.data, sender=mail.sender, before_body=note_on_wire)
        except ConnectFailure:
            # The relay is unreachable: nothing from here on was attempted, so it stays owed.
            ledger.release(recipients[index:])
            break
        except PermanentFailure as exc:
            ledger.record_permanent(recipient, exc.reply)
        except TemporaryFailure as exc:
            ledger.record_temporary(recipient, exc.reply)
        else:
            ledger.record_sent(recipient)
            unrecorded = recipient.delivery_id
        if ledger.due():
            ledger.flush()
            halt = halt_status(copies.digest_id)
            if halt is not None:
                ledger.halt(recipients[index + 1 :], halt)
                break
    if unrecorded is not None:
        journal.sent(unrecorded)


def _retry_in(digest_id: int) -> float | None:
    """Seconds until the digest's earliest retry is due, if a retry is owed at all."""
    earliest = earliest_retry(digest_id)
    if earliest is None:
        return None
    seconds = (earliest - utcnow()).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_COUNTDOWN))
