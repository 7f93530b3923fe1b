"""A digest's state: one column, and one function per transition.

                    pause()
      (made) ──► SENDING ──────────► PAUSED
                 │  ▲   ◄──────────  │
                 │  │    resume()    │
        cancel() │  │                │ cancel()
                 ▼  │ reopen()       ▼
         CANCELLING │ ◄──────────────┘
                 │  │
        finish() │  └───────────── SENT, SENT_WITH_FAILURES
                 ▼                   ▲
             CANCELLED      finish() │ (from SENDING or PAUSED: no row owed)

- (none) -> sending: `digests.runs.create_digest`.
- sending, paused -> paused: `pause`; paused, sending -> sending: `resume` (repeats harmless).
- sending, paused, cancelling -> cancelling: `cancel`.
- sending, paused -> sent / sent_with_failures, cancelling -> cancelled: `finish`, once every
  row is made and none is owed (delivery.rows.finish_if_done decides that in SQL).
- sent, sent_with_failures -> sending: `reopen`, an editor retrying failed rows.

A digest in flight (`IN_FLIGHT`) holds its frequency's sending slot; "preparing", which the
API reports, is a sending digest whose rows are still being made before any went out.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, case, update

from mailer.models import Digest, DigestStatus, utcnow
from mailer.platform.db import db

IN_FLIGHT = (DigestStatus.SENDING, DigestStatus.PAUSED, DigestStatus.CANCELLING)
FINISHED = (DigestStatus.SENT, DigestStatus.SENT_WITH_FAILURES, DigestStatus.CANCELLED)


def _move(
    digest_id: int,
    sources: tuple[DigestStatus, ...],
    *conditions: ColumnElement[bool],
    **values: object,
) -> bool:
    changed = db.change(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status.in_(sources), *conditions)
        .values(**values)
    )
    return bool(changed)


def pause(digest_id: int) -> bool:
    """No new batch starts; batches under way stop at their next flush."""
    return _move(
        digest_id,
        (DigestStatus.SENDING, DigestStatus.PAUSED),
        status=DigestStatus.PAUSED,
        paused_at=utcnow(),
    )


def resume(digest_id: int) -> bool:
    return _move(
        digest_id,
        (DigestStatus.PAUSED, DigestStatus.SENDING),
        status=DigestStatus.SENDING,
        paused_at=None,
        last_enqueued_at=utcnow(),
    )


def cancel(digest_id: int) -> bool:
    return _move(
        digest_id,
        IN_FLIGHT,
        status=DigestStatus.CANCELLING,
        cancelled_at=utcnow(),
        paused_at=None,
    )


def finish(digest_id: int, *, done: ColumnElement[bool], failures: ColumnElement[bool]) -> bool:
    """In flight -> finished, in one statement, when `done` holds in SQL: a cancelled
    digest is cancelled, the others sent (with failures when `failures` holds)."""
    return _move(
        digest_id,
        IN_FLIGHT,
        done,
        status=case(
            (Digest.status == DigestStatus.CANCELLING.value, DigestStatus.CANCELLED.value),
            (failures, DigestStatus.SENT_WITH_FAILURES.value),
            else_=DigestStatus.SENT.value,
        ),
        sending_slot=None,
        finished_at=utcnow(),
    )


def reopen(digest: Digest) -> None:
    """sent / sent_with_failures -> sending, for rows an editor sends again (the caller
    has checked the state and made the rows owed, in the same unit of work)."""
    if digest.status not in (DigestStatus.SENT, DigestStatus.SENT_WITH_FAILURES):
        raise ValueError(f"digest {digest.id} is {digest.status}: it cannot be sent again")
    digest.status = DigestStatus.SENDING
    # One digest of each frequency sends at a time, retries included.
    digest.sending_slot = digest.frequency.sending_slot
    digest.finished_at = None
    # Counted live while it sends again; written anew when it finishes.
    digest.sent_count = digest.failed_count = None
    digest.unknown_count = digest.skipped_count = None
    digest.last_enqueued_at = utcnow()
    db.session.flush()
