"""Recovery: settle the claims of dead workers, and restart digests nobody is sending."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import select, update

from mailer.delivery.journal import Journal
from mailer.delivery.materializer import enqueue_materialize
from mailer.delivery.rows import count_owed, finish_if_done, live_claims
from mailer.delivery.sender import enqueue_batches
from mailer.digests import states
from mailer.models import Delivery, DeliveryStatus, Digest, DigestStatus, SendClaim, utcnow
from mailer.platform.db import db
from mailer.platform.redis_client import redis_client

log = logging.getLogger(__name__)

UNKNOWN_REPLY = "worker died while this message was being sent; not resent"
LOST_JOURNAL_REPLY = "worker died and its send journal was lost; not resent"


def _stale_before() -> datetime:
    return utcnow() - timedelta(seconds=current_app.config["MAILER"].claim_stale_seconds)


def recover_stale_claims() -> int:
    """Settles the claims of dead workers from their journals. Returns how many."""
    stale_before = _stale_before()
    stale = list(
        db.session.scalars(
            select(SendClaim.id).where(
                SendClaim.finished.is_(False), SendClaim.heartbeat_at < stale_before
            )
        )
    )
    settled = 0
    for claim_id in stale:
        try:
            settled += recover_claim(claim_id, stale_before)
        except redis.RedisError as exc:
            # Without the journal nothing can be decided yet; the next round tries again.
            log.warning("claim %s not recovered: journal unreadable (%s)", claim_id, exc)
    return settled


def recover_claim(claim_id: int, stale_before: datetime) -> bool:
    """claimed -> sent (the journal lists it), unknown (it was on the wire, or the
    journal is gone) or pending (never reached). False if the claim came back to life."""
    journal = Journal(redis_client(), claim_id)
    opened, sent, inflight = journal.read()
    with db.transaction():
        taken = db.change(
            update(SendClaim)
            .where(
                SendClaim.id == claim_id,
                SendClaim.finished.is_(False),
                SendClaim.heartbeat_at < stale_before,
            )
            .values(finished=True)
        )
        if not taken:
            return False  # it came back to life, or another reconciler got here first
        mine = (Delivery.claim_id == claim_id, Delivery.status == DeliveryStatus.CLAIMED)

        def mark(ids: set[int] | None, **values: object) -> None:
            condition = [*mine] if ids is None else [Delivery.id.in_(ids), *mine]
            db.change(update(Delivery).where(*condition).values(**values))

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
    return True


def _sending_digests() -> list[int]:
    """Digests sending (not paused by an editor), or cancelled and still finishing."""
    return list(
        db.session.scalars(
            # A cancelled one too: its batches under way end, and then it finishes.
            select(Digest.id).where(
                Digest.status.in_((DigestStatus.SENDING, DigestStatus.CANCELLING))
            )
        )
    )


def _resume_materializing(stale_before: datetime) -> int:
    """Digests whose rows are not all made and whose materializer stopped: start another."""
    stalled = list(
        db.session.scalars(
            select(Digest.id).where(
                Digest.status.in_(states.IN_FLIGHT),
                Digest.materialized_at.is_(None),
                (Digest.last_enqueued_at.is_(None)) | (Digest.last_enqueued_at < stale_before),
            )
        )
    )
    for digest_id in stalled:
        with db.transaction():
            db.change(
                update(Digest).where(Digest.id == digest_id).values(last_enqueued_at=utcnow())
            )
        enqueue_materialize(digest_id)
    return len(stalled)


def reconcile_digests() -> dict[str, int]:
    """Re-enqueues work for sending digests that no live task is working on."""
    stale_before = _stale_before()
    recovered = recover_stale_claims()
    materializing = _resume_materializing(stale_before)
    enqueued = 0
    for digest_id in _sending_digests():
        owed = count_owed(digest_id, due_now=True)
        idle = live_claims(digest_id, stale_before) == 0
        quiet = db.session.scalar(
            select(Digest.id).where(
                Digest.id == digest_id,
                (Digest.last_enqueued_at.is_(None)) | (Digest.last_enqueued_at < stale_before),
            )
        )
        if owed and idle and quiet:
            with db.transaction():
                db.change(
                    update(Digest).where(Digest.id == digest_id).values(last_enqueued_at=utcnow())
                )
            enqueue_batches(digest_id, owed)
            enqueued += 1
        finish_if_done(digest_id)
    return {
        "claims_recovered": recovered,
        "digests_resumed": enqueued,
        "materializing_resumed": materializing,
    }
