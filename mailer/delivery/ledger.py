"""The ledger: one claim's outcomes, kept in memory and flushed to SQL in bulk."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update

from mailer.bounces import processing as bounces
from mailer.delivery.claims import Recipient
from mailer.delivery.lease import ClaimTaken
from mailer.delivery.rows import CANCELLED_REPLY
from mailer.models import Delivery, DeliveryStatus, SendClaim, utcnow
from mailer.platform.db import db
from mailer.platform.settings import Settings

FLUSH_EVERY_ROWS = 200
FLUSH_EVERY_SECONDS = 1.0
MAX_RETRY_COUNTDOWN = 600  # far below the broker's visibility timeout


@dataclass(frozen=True)
class Outcome:
    """What became of one attempted row other than a plain success."""

    delivery_id: int
    subscriber_id: int
    status: DeliveryStatus  # FAILED or RETRYING
    reply: str
    attempts: int
    gave_up: bool = False  # failed only because temporary refusals used up every attempt
    next_attempt_at: datetime | None = None


@dataclass
class Totals:
    sent: int = 0
    failed: int = 0
    retrying: int = 0


@dataclass
class Ledger:
    """Outcomes of one claim. Every claimed row leaves `claimed` through flush()."""

    claim_id: int
    digest_id: int
    settings: Settings
    sent: list[int] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # never attempted: the relay was down
    halted: list[int] = field(default_factory=list)  # not attempted: paused or cancelled
    halt_status: DeliveryStatus = DeliveryStatus.PENDING
    last_flush: float = field(default_factory=time.monotonic)
    totals: Totals = field(default_factory=Totals)

    def record_sent(self, recipient: Recipient) -> None:
        self.sent.append(recipient.delivery_id)

    def record_permanent(self, recipient: Recipient, reply: str) -> None:
        self.outcomes.append(
            Outcome(
                recipient.delivery_id,
                recipient.subscriber_id,
                DeliveryStatus.FAILED,
                reply,
                recipient.attempts + 1,
            )
        )

    def record_temporary(self, recipient: Recipient, reply: str) -> None:
        attempts = recipient.attempts + 1
        if attempts >= self.settings.send_max_attempts:
            self.outcomes.append(
                Outcome(
                    recipient.delivery_id,
                    recipient.subscriber_id,
                    DeliveryStatus.FAILED,
                    f"gave up: {reply}",
                    attempts,
                    gave_up=True,
                )
            )
            return
        delay = min(
            self.settings.send_retry_base_seconds * 2 ** (attempts - 1), MAX_RETRY_COUNTDOWN
        )
        at = utcnow() + timedelta(seconds=delay * random.uniform(0.8, 1.2))
        self.outcomes.append(
            Outcome(
                recipient.delivery_id,
                recipient.subscriber_id,
                DeliveryStatus.RETRYING,
                reply,
                attempts,
                next_attempt_at=at,
            )
        )

    def release(self, recipients: list[Recipient]) -> None:
        self.released.extend(r.delivery_id for r in recipients)

    def halt(self, recipients: list[Recipient], status: DeliveryStatus) -> None:
        self.halted.extend(r.delivery_id for r in recipients)
        self.halt_status = status

    def due(self) -> bool:
        pending = len(self.sent) + len(self.outcomes)
        return (
            pending >= FLUSH_EVERY_ROWS or time.monotonic() - self.last_flush > FLUSH_EVERY_SECONDS
        )

    def flush(self, *, finished: bool = False) -> None:
        """claimed -> sent / failed / retrying / pending / skipped, and the claim's heartbeat."""
        now = utcnow()
        mine = (Delivery.claim_id == self.claim_id, Delivery.status == DeliveryStatus.CLAIMED)

        def change(ids: list[int], **values: object) -> None:
            db.change(update(Delivery).where(Delivery.id.in_(ids), *mine).values(**values))

        with db.transaction():
            if self.sent:
                change(
                    self.sent,
                    status=DeliveryStatus.SENT,
                    sent_at=now,
                    attempts=Delivery.attempts + 1,
                )
            for outcome in self.outcomes:
                values: dict[str, object] = {
                    "status": outcome.status,
                    "smtp_reply": outcome.reply,
                    "attempts": outcome.attempts,
                    "gave_up": outcome.gave_up,
                }
                if outcome.status == DeliveryStatus.RETRYING:
                    values.update(next_attempt_at=outcome.next_attempt_at, claim_id=None)
                change([outcome.delivery_id], **values)
                if outcome.status == DeliveryStatus.FAILED and not outcome.gave_up:
                    # A 5xx in the transaction is a hard bounce, like one that comes back later.
                    bounces.record_refusal(
                        outcome.subscriber_id, outcome.delivery_id, self.digest_id, outcome.reply
                    )
            if self.released:
                # Never attempted: retried later, without using up an attempt.
                retry_at = now + timedelta(seconds=self.settings.send_retry_base_seconds)
                change(
                    self.released,
                    status=DeliveryStatus.RETRYING,
                    claim_id=None,
                    next_attempt_at=retry_at,
                )
            if self.halted:
                skipped = self.halt_status == DeliveryStatus.SKIPPED
                change(
                    self.halted,
                    status=self.halt_status,
                    claim_id=None,
                    smtp_reply=CANCELLED_REPLY if skipped else None,
                )
            # Fenced: a claim recovery settled stays settled; what this batch did since
            # its last flush is in the journal recovery read, so it is dropped here.
            still_mine = db.change(
                update(SendClaim)
                .where(SendClaim.id == self.claim_id, SendClaim.finished.is_(False))
                .values(heartbeat_at=now, finished=finished)
            )
            if still_mine != 1:
                raise ClaimTaken(self.claim_id)
        self.totals.sent += len(self.sent)
        self.totals.failed += sum(o.status == DeliveryStatus.FAILED for o in self.outcomes)
        self.totals.retrying += sum(o.status == DeliveryStatus.RETRYING for o in self.outcomes)
        self.sent, self.outcomes, self.released, self.halted = [], [], [], []
        self.last_flush = time.monotonic()
