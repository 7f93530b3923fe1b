"""The lease on a claim: a heartbeat of its own, and the fence that stops a batch whose
claim was taken.

Recovery takes a claim whose heartbeat is older than MAILER_CLAIM_STALE_SECONDS. The
heartbeat used to be written only between messages, so a worker waiting on a slow
relay looked dead while it was sending, and went on sending rows that recovery had
given to other batches. Now a thread beats for the batch while it lives, each beat
only while the claim is still the batch's own (`finished` is false); and before each
message the batch checks that its lease will outlast the longest exchange one message
may take (`Settings.smtp_transaction_seconds`), so a worker whose beats stopped
reaching the database stops before recovery could take its claim.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from mailer.models import SendClaim, utcnow
from mailer.platform.settings import Settings

log = logging.getLogger(__name__)


class ClaimTaken(Exception):
    """The claim is no longer this batch's: recovery settled it. Send nothing more."""

    def __init__(self, claim_id: int) -> None:
        super().__init__(f"claim {claim_id} was taken by recovery; stopping")
        self.claim_id = claim_id


def beat_interval(settings: Settings) -> float:
    """A beat often enough that two can fail in the margin between the longest
    exchange and the stale time (settings validation keeps that margin positive)."""
    margin = settings.claim_stale_seconds - settings.smtp_transaction_seconds
    return min(max(margin / 3, 0.2), 30.0)


def renew(engine: Engine, claim_id: int) -> bool:
    """One fenced heartbeat. False when the claim is finished (it was taken)."""
    with engine.begin() as connection:
        changed = connection.execute(
            update(SendClaim)
            .where(SendClaim.id == claim_id, SendClaim.finished.is_(False))
            .values(heartbeat_at=utcnow())
        ).rowcount
    return changed == 1


class ClaimLease:
    """Keeps one claim alive from a thread of its own while its batch sends."""

    def __init__(self, engine: Engine, settings: Settings, claim_id: int) -> None:
        self.engine = engine
        self.claim_id = claim_id
        self.stale_seconds = settings.claim_stale_seconds
        self.transaction_seconds = settings.smtp_transaction_seconds
        self.interval = beat_interval(settings)
        # The claim was opened (its heartbeat written) just before the lease exists.
        self.renewed_at = time.monotonic()
        self.taken = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"claim-{claim_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> ClaimLease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def holds(self) -> bool:
        """True while one more message can be sent and end before recovery could take
        the claim: never after the claim was taken."""
        if self.taken:
            return False
        left = self.stale_seconds - (time.monotonic() - self.renewed_at)
        return left > self.transaction_seconds

    def mark_taken(self) -> None:
        if not self.taken:
            log.warning("claim %s was taken by recovery; its batch stops", self.claim_id)
        self.taken = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()  # the heartbeat written is no older than this
            try:
                if not renew(self.engine, self.claim_id):
                    self.mark_taken()
                    return
            except SQLAlchemyError as exc:
                # Not renewed: the lease runs down, and holds() stops the batch in time.
                log.warning("claim %s heartbeat failed: %s", self.claim_id, exc)
                continue
            self.renewed_at = started
