"""The send engine: claim a batch of deliveries, send each once, record every outcome.

A batch task claims rows with a conditional update, writes ahead to a Redis journal
which row is on the wire, and flushes outcomes to SQL every second. If its worker
dies, the reconciler reads the journal: rows sent are marked sent, the one row on
the wire is marked unknown (never resent), the rest go back to pending.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import ColumnElement, func, select, update

from mailer import digests, jobs
from mailer.config import Settings
from mailer.db import db
from mailer.links import external_url
from mailer.mail import (
    ConnectFailure,
    PermanentFailure,
    PreparedMessage,
    RenderedEmail,
    TemporaryFailure,
    ascii_address,
    build_message,
    smtp_connection,
)
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
from mailer.redis_client import redis_client
from mailer.tokens import make_unsubscribe_token

log = logging.getLogger(__name__)

FLUSH_EVERY_ROWS = 200
FLUSH_EVERY_SECONDS = 1.0
MAX_RETRY_COUNTDOWN = 600  # far below the broker's visibility timeout
JOURNAL_TTL = 7 * 86400
UNKNOWN_REPLY = "worker died while this message was being sent; not resent"
LOST_JOURNAL_REPLY = "worker died and its send journal was lost; not resent"


class Journal:
    """Write-ahead of one claim's sends in Redis: which row is on the wire, which went."""

    def __init__(self, client: redis.Redis, claim_id: int) -> None:
        self.client = client
        self.prefix = f"mailer:claim:{claim_id}"
        self.working = True
        self._connection: redis.Connection | None = None  # for the streamed writes
        self._unread = 0  # replies of streamed writes not read yet

    def _stream(self, *commands: tuple) -> None:
        """Writes commands without waiting for their replies; they are read before the next.

        Once written they reach Redis even if this process dies at once, which is
        all a write-ahead needs; waiting for each reply cost a round trip per message.
        """
        if not self.working:
            return
        try:
            if self._connection is None:
                self._connection = self.client.connection_pool.get_connection()
            for _ in range(self._unread):
                self._connection.read_response()
            self._connection.send_packed_command(self._connection.pack_commands(commands))
            self._unread = len(commands)
        except redis.RedisError as exc:
            self._fail(exc)

    def settle(self) -> None:
        """Reads what the streamed writes answered and gives their connection back."""
        if self._connection is None:
            return
        try:
            for _ in range(self._unread):
                self._connection.read_response()
        except redis.RedisError as exc:
            self._fail(exc)
            return
        self.client.connection_pool.release(self._connection)
        self._connection, self._unread = None, 0

    def _fail(self, exc: Exception) -> None:
        # Sending goes on; should this worker die now, its rows are reported unknown.
        log.warning("send journal unavailable (%s); continuing without it", exc)
        self.working = False
        if self._connection is not None:
            self._connection.disconnect()
            self.client.connection_pool.release(self._connection)
            self._connection, self._unread = None, 0

    def _run(self, *commands: tuple) -> None:
        self.settle()  # streamed writes first, so the journal stays in order
        if not self.working:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, *args in commands:
                getattr(pipe, name)(*args)
            pipe.execute()
        except redis.RedisError as exc:
            self._fail(exc)

    def open(self) -> None:
        sent = f"{self.prefix}:sent"
        self._run(
            ("set", f"{self.prefix}:open", 1, JOURNAL_TTL),
            ("rpush", sent, 0),  # a marker entry, so the list can carry its expiry
            ("expire", sent, JOURNAL_TTL),
        )

    def attempting(self, delivery_id: int, *, sent_before: int | None = None) -> None:
        """Notes the row going on the wire, and the one that went before it: one round trip.

        So the row sent last is recorded only when the next one starts, or at close;
        a worker dying in between leaves that one row in doubt, never more.
        """
        commands: list[tuple] = [("SET", f"{self.prefix}:inflight", delivery_id, "EX", JOURNAL_TTL)]
        if sent_before is not None:
            commands.insert(0, ("RPUSH", f"{self.prefix}:sent", sent_before))
        self._stream(*commands)

    def sent(self, delivery_id: int) -> None:
        key = f"{self.prefix}:sent"
        self._run(("rpush", key, delivery_id), ("expire", key, JOURNAL_TTL))

    def read(self) -> tuple[bool, set[int], int | None]:
        """(journal exists, ids sent, id on the wire)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(f"{self.prefix}:open")
        pipe.lrange(f"{self.prefix}:sent", 0, -1)
        pipe.get(f"{self.prefix}:inflight")
        opened, sent, inflight = pipe.execute()
        return bool(opened), {int(x) for x in sent}, int(inflight) if inflight else None

    def discard(self) -> None:
        self._run(
            ("delete", f"{self.prefix}:open", f"{self.prefix}:sent", f"{self.prefix}:inflight")
        )


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str
    attempts: int


class DigestMessages:
    """Each reader's message, spliced from the digest serialized once per batch."""

    def __init__(self, settings: Settings, digest: Digest) -> None:
        self.settings = settings
        self.digest_id = digest.id
        self.stamp = int(digest.created_at.timestamp())
        self.prepared = PreparedMessage(
            settings,
            RenderedEmail(digest.subject, digest.text_body, digest.html_body),
            digests.UNSUBSCRIBE_PLACEHOLDER,
            {
                "List-Id": f"{settings.list_name} <{settings.list_id}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Precedence": "bulk",
            },
        )

    def message_id(self, delivery_id: int) -> str:
        # Derived from the delivery row, so it need not be stored to match bounces.
        return (
            f"<digest.{self.digest_id}.{delivery_id}.{self.stamp}@{self.settings.sending_domain}>"
        )

    def build(self, recipient: Recipient) -> bytes:
        token = make_unsubscribe_token(recipient.subscriber_id)
        url = external_url("public.unsubscribe", token=token)
        mailto = f"mailto:{self.settings.unsubscribe_mailbox}?subject=unsubscribe%20{token}"
        return self.prepared.render(
            headers={
                "To": ascii_address(recipient.email),
                "Message-ID": self.message_id(recipient.delivery_id),
                "List-Unsubscribe": f"<{url}>, <{mailto}>",
            },
            link=url,
        )


@dataclass
class Ledger:
    """Outcomes of one claim, flushed to SQL in bulk."""

    claim_id: int
    settings: Settings
    sent: list[int] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    retrying: list[dict] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    halted: list[int] = field(default_factory=list)  # not attempted: paused or cancelled
    halt_status: DeliveryStatus = DeliveryStatus.PENDING
    last_flush: float = field(default_factory=time.monotonic)
    totals: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0, "retrying": 0})

    def record_temporary(self, recipient: Recipient, reply: str) -> None:
        attempts = recipient.attempts + 1
        if attempts >= self.settings.send_max_attempts:
            self.failed.append(
                {"i": recipient.delivery_id, "r": f"gave up: {reply}", "a": attempts, "g": True}
            )
            return
        delay = min(
            self.settings.send_retry_base_seconds * 2 ** (attempts - 1), MAX_RETRY_COUNTDOWN
        )
        at = utcnow() + timedelta(seconds=delay * random.uniform(0.8, 1.2))
        self.retrying.append({"i": recipient.delivery_id, "r": reply, "a": attempts, "t": at})

    def due(self) -> bool:
        pending = len(self.sent) + len(self.failed) + len(self.retrying)
        return (
            pending >= FLUSH_EVERY_ROWS or time.monotonic() - self.last_flush > FLUSH_EVERY_SECONDS
        )

    def flush(self, *, finished: bool = False) -> None:
        session = db.session
        now = utcnow()
        mine = (Delivery.claim_id == self.claim_id, Delivery.status == DeliveryStatus.CLAIMED)
        with db.transaction():
            if self.sent:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(self.sent), *mine)
                    .values(status=DeliveryStatus.SENT, sent_at=now, attempts=Delivery.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
            for row in self.failed:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == row["i"], *mine)
                    .values(
                        status=DeliveryStatus.FAILED,
                        smtp_reply=row["r"],
                        attempts=row["a"],
                        gave_up=row.get("g", False),
                    )
                    .execution_options(synchronize_session=False)
                )
            for row in self.retrying:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == row["i"], *mine)
                    .values(
                        status=DeliveryStatus.RETRYING,
                        smtp_reply=row["r"],
                        attempts=row["a"],
                        next_attempt_at=row["t"],
                        claim_id=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            if self.released:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(self.released), *mine)
                    # Never attempted: retried after a pause, without using up an attempt.
                    .values(
                        status=DeliveryStatus.RETRYING,
                        claim_id=None,
                        next_attempt_at=now
                        + timedelta(seconds=self.settings.send_retry_base_seconds),
                    )
                    .execution_options(synchronize_session=False)
                )
            if self.halted:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(self.halted), *mine)
                    .values(
                        status=self.halt_status,
                        claim_id=None,
                        smtp_reply=digests.CANCELLED_REPLY
                        if self.halt_status == DeliveryStatus.SKIPPED
                        else None,
                    )
                    .execution_options(synchronize_session=False)
                )
            session.execute(
                update(SendClaim)
                .where(SendClaim.id == self.claim_id)
                .values(heartbeat_at=now, finished=finished)
                .execution_options(synchronize_session=False)
            )
        self.totals["sent"] += len(self.sent)
        self.totals["failed"] += len(self.failed)
        self.totals["retrying"] += len(self.retrying)
        self.sent, self.failed, self.retrying, self.released, self.halted = [], [], [], [], []
        self.last_flush = time.monotonic()


def _halt_status(digest_id: int) -> DeliveryStatus | None:
    """Why a batch must stop taking rows: paused (rows stay owed) or cancelled or finished."""
    digest = db.session.execute(
        select(Digest.status, Digest.paused_at, Digest.cancelled_at).where(Digest.id == digest_id)
    ).first()
    if digest is None or digest.status != DigestStatus.SENDING or digest.cancelled_at:
        return DeliveryStatus.SKIPPED
    if digest.paused_at:
        return DeliveryStatus.PENDING
    return None


def _open_claim(digest_id: int) -> int | None:
    session = db.session
    with db.transaction():
        if _halt_status(digest_id) is not None:
            return None
        claim = SendClaim(digest_id=digest_id, worker=jobs.worker_name())
        session.add(claim)
        session.flush()
        return claim.id


def _claim_rows(claim_id: int, digest_id: int, batch_size: int) -> list[Recipient]:
    """Takes up to batch_size owed rows; rows of readers who left since are skipped."""
    session = db.session
    with db.transaction():
        owed = (
            select(Delivery.id)
            .where(_owed_now(digest_id))
            .order_by(Delivery.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(owed.scalar_subquery()))
            .values(status=DeliveryStatus.CLAIMED, claim_id=claim_id)
            .execution_options(synchronize_session=False)
        )
        rows = session.execute(
            select(
                Delivery.id, Subscriber.id, Subscriber.email, Subscriber.status, Delivery.attempts
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.claim_id == claim_id, Delivery.status == DeliveryStatus.CLAIMED)
            .order_by(Delivery.id)
        ).all()
        gone = [r[0] for r in rows if r[3] != SubscriberStatus.ACTIVE]
        if gone:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(gone))
                .values(status=DeliveryStatus.SKIPPED)
                .execution_options(synchronize_session=False)
            )
    return [Recipient(r[0], r[1], r[2], r[4]) for r in rows if r[3] == SubscriberStatus.ACTIVE]


def _wait_for_rate_slot(client: redis.Redis, per_second: int) -> None:
    """A global limit across all workers: a counter per wall-clock second in Redis."""
    while True:
        second = int(time.time())
        key = f"mailer:send-rate:{second}"
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 5)
        used = pipe.execute()[0]
        if used <= per_second:
            return
        time.sleep(max(0.0, second + 1 - time.time()))  # throttling, not synchronization


@dataclass(frozen=True)
class BatchResult:
    claimed: int
    sent: int
    failed: int
    retrying: int
    retry_in: float | None  # seconds until the earliest retry is due


def send_batch(digest_id: int) -> BatchResult:
    """Claims one batch of a digest's owed deliveries and sends them."""
    settings: Settings = current_app.config["MAILER"]
    claim_id = _open_claim(digest_id)
    if claim_id is None:
        return BatchResult(0, 0, 0, 0, None)
    journal = Journal(redis_client(), claim_id)
    journal.open()
    recipients = _claim_rows(claim_id, digest_id, settings.send_batch_size)
    ledger = Ledger(claim_id, settings)
    if recipients:
        digest = db.session.get(Digest, digest_id)
        messages = DigestMessages(settings, digest)
        db.session.rollback()  # end the read before sending; nothing is held open
        try:
            _send_all(recipients, messages, journal, ledger, settings)
        finally:
            journal.settle()
    ledger.flush(finished=True)
    journal.discard()
    retry_in = _retry_in(digest_id)
    digests.finish_if_done(digest_id)
    t = ledger.totals
    return BatchResult(len(recipients), t["sent"], t["failed"], t["retrying"], retry_in)


def _send_all(
    recipients: list[Recipient],
    messages: DigestMessages,
    journal: Journal,
    ledger: Ledger,
    settings: Settings,
) -> None:
    connection = smtp_connection()
    unrecorded: int | None = None  # sent, not yet in the journal
    for index, recipient in enumerate(recipients):
        if settings.send_rate_per_second:
            _wait_for_rate_slot(redis_client(), settings.send_rate_per_second)
        data = messages.build(recipient)
        journal.attempting(recipient.delivery_id, sent_before=unrecorded)
        unrecorded = None
        try:
            connection.send_bytes(ascii_address(recipient.email), data)
        except ConnectFailure:
            # The relay is unreachable: nothing below was attempted, so it stays owed.
            ledger.released.extend(r.delivery_id for r in recipients[index:])
            break
        except PermanentFailure as exc:
            ledger.failed.append(
                {"i": recipient.delivery_id, "r": exc.reply, "a": recipient.attempts + 1}
            )
        except TemporaryFailure as exc:
            ledger.record_temporary(recipient, exc.reply)
        else:
            ledger.sent.append(recipient.delivery_id)
            unrecorded = recipient.delivery_id
        if ledger.due():
            ledger.flush()
            halt = _halt_status(messages.digest_id)
            if halt is not None:
                ledger.halted.extend(r.delivery_id for r in recipients[index + 1 :])
                ledger.halt_status = halt
                break
    if unrecorded is not None:
        journal.sent(unrecorded)


def _retry_in(digest_id: int) -> float | None:
    """Seconds until the digest's earliest retry is due, if a retry is owed at all."""
    earliest = db.session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.RETRYING
        )
    )
    if earliest is None:
        return None
    seconds = (earliest - utcnow()).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_COUNTDOWN))


def recover_stale_claims() -> int:
    """Settles the claims of dead workers from their journals. Returns how many."""
    stale_before = utcnow() - timedelta(seconds=current_app.config["MAILER"].claim_stale_seconds)
    stale = list(
        db.session.scalars(
            select(SendClaim.id).where(
                SendClaim.finished.is_(False), SendClaim.heartbeat_at < stale_before
            )
        )
    )
    for claim_id in stale:
        _recover_claim(claim_id, stale_before)
    return len(stale)


def _recover_claim(claim_id: int, stale_before: datetime) -> None:
    journal = Journal(redis_client(), claim_id)
    opened, sent, inflight = journal.read()
    session = db.session
    with db.transaction():
        taken = session.execute(
            update(SendClaim)
            .where(
                SendClaim.id == claim_id,
                SendClaim.finished.is_(False),
                SendClaim.heartbeat_at < stale_before,
            )
            .values(finished=True)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not taken:
            return  # it came back to life, or another reconciler got here first
        mine = (Delivery.claim_id == claim_id, Delivery.status == DeliveryStatus.CLAIMED)

        def mark(ids: set[int] | None, **values: object) -> None:
            condition = [*mine] if ids is None else [Delivery.id.in_(ids), *mine]
            session.execute(
                update(Delivery)
                .where(*condition)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

        if not opened:
            mark(None, status=DeliveryStatus.UNKNOWN, smtp_reply=LOST_JOURNAL_REPLY)
        else:
            if sent:
                mark(sent, status=DeliveryStatus.SENT, sent_at=utcnow())
            if inflight is not None and inflight not in sent:
                mark({inflight}, status=DeliveryStatus.UNKNOWN, smtp_reply=UNKNOWN_REPLY)
            mark(None, status=DeliveryStatus.PENDING, claim_id=None)
    journal.discard()
    log.warning("recovered claim %s: %d sent, in doubt: %s", claim_id, len(sent), inflight)


def reconcile_digests() -> dict[str, int]:
    """Re-enqueues work for sending digests that no live task is working on."""
    settings = current_app.config["MAILER"]
    stale_before = utcnow() - timedelta(seconds=settings.claim_stale_seconds)
    recovered = recover_stale_claims()
    enqueued = 0
    for digest_id in digests.sending_digests():
        owed = db.session.scalar(
            select(func.count()).select_from(Delivery).where(_owed_now(digest_id))
        )
        idle = digests.live_claims(digest_id, stale_before) == 0
        quiet = db.session.scalar(
            select(Digest.id).where(
                Digest.id == digest_id,
                (Digest.last_enqueued_at.is_(None)) | (Digest.last_enqueued_at < stale_before),
            )
        )
        if owed and idle and quiet:
            with db.transaction():
                db.session.execute(
                    update(Digest)
                    .where(Digest.id == digest_id)
                    .values(last_enqueued_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            digests.enqueue_batches(digest_id, owed)
            enqueued += 1
        digests.finish_if_done(digest_id)
    return {"claims_recovered": recovered, "digests_resumed": enqueued}


def _owed_now(digest_id: int) -> ColumnElement[bool]:
    """Rows a batch may take now: pending, or retrying and due."""
    return (Delivery.digest_id == digest_id) & (
        (Delivery.status == DeliveryStatus.PENDING)
        | ((Delivery.status == DeliveryStatus.RETRYING) & (Delivery.next_attempt_at <= utcnow()))
    )


def schedule_retry(digest_id: int, countdown: float) -> None:
    """One retry task per digest and due time, however many batches ask for it."""
    key = f"mailer:retry-scheduled:{digest_id}"
    try:
        fresh = redis_client().set(key, 1, nx=True, px=max(1, int(countdown * 1000)))
    except redis.RedisError:
        fresh = True  # without Redis there is no queue either; the reconciler will see
    if fresh:
        jobs.enqueue_in(jobs.SEND_BATCH, countdown, digest_id)


def send_test(address: str, requested_by: str) -> bool:
    """Mails the next digest to one address, marked as a test; no delivery row, not counted."""
    settings: Settings = current_app.config["MAILER"]
    rendered = digests.preview()
    if rendered is None:
        return False
    subject, text, html = rendered
    # A test recipient is not a reader: its unsubscribe link leads nowhere on purpose.
    sample = external_url("public.unsubscribe", token="test-message")  # noqa: S106 - not a secret
    message = build_message(
        settings,
        to=address,
        rendered=RenderedEmail(
            subject=f"[TEST] {subject}",
            text=text.replace(digests.UNSUBSCRIBE_PLACEHOLDER, sample),
            html=html.replace(digests.UNSUBSCRIBE_PLACEHOLDER, sample),
        ),
        headers={
            "List-Id": f"{settings.list_name} <{settings.list_id}>",
            "X-Mailer-Test": f"requested by {requested_by}",
        },
    )
    smtp_connection().send(message)
    return True
