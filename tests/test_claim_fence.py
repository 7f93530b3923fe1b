"""Claims no live worker can lose: a batch waiting on a slow relay keeps its claim, and a
batch whose claim was taken anyway stops before its next message."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.delivery import recover_stale_claims
from mailer.delivery.claims import claim_rows, open_claim
from mailer.delivery.journal import Journal
from mailer.delivery.lease import ClaimTaken
from mailer.delivery.ledger import Ledger
from mailer.models import Delivery, DeliveryStatus, SendClaim, utcnow
from mailer.platform.db import db
from mailer.platform.redis_client import redis_client
from mailer.platform.settings import ConfigError, load_settings
from tests.conftest import Worker
from tests.helpers import add_article, add_readers, wait_until
from tests.relays import Pace, PacedRelay
from tests.test_send_resilience import finish_with_reconciler

SECRET = "a-test-secret-that-is-long-enough"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("timeout", "stale"), [("30", "120"), ("30", "100"), ("1", "4"), ("60", "10")]
)
def test_a_stale_time_not_above_the_longest_smtp_exchange_stops_start_up(timeout, stale):
    environ = {
        "MAILER_SECRET_KEY": SECRET,
        "MAILER_SMTP_TIMEOUT": timeout,
        "MAILER_CLAIM_STALE_SECONDS": stale,
    }
    with pytest.raises(ConfigError, match=r"MAILER_CLAIM_STALE_SECONDS .* MAILER_SMTP_TIMEOUT"):
        load_settings(environ=environ)


@pytest.mark.unit
def test_the_defaults_leave_room_for_the_longest_exchange():
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    assert settings.claim_stale_seconds > settings.smtp_transaction_seconds


def take_claim(app, claim_id: int) -> None:
    """What recovery does to a claim it believes dead; retried while a heartbeat races it."""

    def taken() -> bool:
        with app.app_context():
            with db.transaction():
                db.change(
                    update(SendClaim)
                    .where(SendClaim.id == claim_id)
                    .values(heartbeat_at=utcnow() - timedelta(hours=1))
                )
            recover_stale_claims()
            return bool(
                db.session.scalar(select(SendClaim.finished).where(SendClaim.id == claim_id))
            )

    wait_until(taken, timeout=20, message="the claim was never taken")


def test_a_flush_after_recovery_neither_writes_nor_revives_the_claim(app, outbox):
    add_readers(app, "fenced", 5)
    add_article(app, "Fenced", "https://news.example.org/fenced")
    with app.app_context():
        from mailer.delivery import materialize_digest
        from mailer.digests.runs import create_digest

        digest_id = create_digest(trigger="test")
        materialize_digest(digest_id)
        claim_id = open_claim(digest_id)
        assert claim_id is not None
        Journal(redis_client(), claim_id).open()  # as send_batch does
        recipients = claim_rows(claim_id, digest_id, 5)
        ledger = Ledger(claim_id, digest_id, app.config["MAILER"])
        ledger.record_sent(recipients[0])
    take_claim(app, claim_id)
    with app.app_context():
        with pytest.raises(ClaimTaken):
            ledger.flush(finished=False)
        db.session.rollback()
        claim = db.session.get_one(SendClaim, claim_id)
        statuses = Counter(
            db.session.scalars(select(Delivery.status).where(Delivery.digest_id == digest_id))
        )
    assert claim.finished is True  # not written back to false
    assert statuses == {DeliveryStatus.PENDING: 5}  # recovery's decision stands


@pytest.mark.slow
def test_a_batch_whose_claim_was_taken_stops_before_its_next_message(app, isolated, tmp_path):
    """Forced from outside (recovery told the claim is an hour old while its worker waits
    on the relay): the worker sends nothing more, and nobody gets two copies."""
    gate, held = threading.Event(), threading.Event()

    def policy(step: str, ordinal: int) -> Pace:
        if step == "mail" and ordinal == 3:
            held.set()
            gate.wait(30)  # the relay thread blocks; the worker waits on its reply
        return Pace()

    relay = PacedRelay(policy)
    relay.start()
    try:
        app, env = isolated(
            extra={"MAILER_SMTP_PORT": str(relay.port), "MAILER_SMTP_TIMEOUT": "10",
                   "MAILER_CLAIM_STALE_SECONDS": "45", "MAILER_SEND_BATCH_SIZE": "30"}
        )  # fmt: skip
        emails = add_readers(app, "taken", 30)
        add_article(app, "Taken", "https://news.example.org/taken")
        worker = Worker(env, tmp_path / "worker.log", concurrency=1)
        worker.start(app)
        try:
            with app.app_context():
                from mailer.digests.runs import create_digest

                digest_id = create_digest(trigger="test")
            assert held.wait(30), "the relay never saw the third message"
            with app.app_context():
                claim_id = db.session.scalar(
                    select(SendClaim.id).where(SendClaim.finished.is_(False))
                )
            take_claim(app, claim_id)
            # The batch's heartbeat finds the claim gone while the relay still holds it.
            log_path = tmp_path / "worker.log"
            wait_until(
                lambda: f"claim {claim_id} was taken by recovery" in log_path.read_text(),
                timeout=20,
                message="the batch never noticed",
            )
            gate.set()
            statuses = finish_with_reconciler(app, digest_id, timeout=60)
        finally:
            worker.stop()
    finally:
        gate.set()
        relay.stop()

    assert max(relay.delivered.values()) == 1, "a reader got the digest twice"
    # The one on the wire when the claim was taken is reported in doubt, never resent.
    assert statuses[DeliveryStatus.UNKNOWN] == 1
    assert statuses[DeliveryStatus.SENT] == len(emails) - 1
    assert set(relay.delivered) == set(emails)


def run_through(app, isolated, tmp_path, policy, readers: int, extra: dict[str, str]):
    relay = PacedRelay(policy)
    relay.start()
    try:
        app, env = isolated(extra={"MAILER_SMTP_PORT": str(relay.port), **extra})
        emails = add_readers(app, "paced", readers)
        add_article(app, "Paced", "https://news.example.org/paced")
        worker = Worker(env, tmp_path / "worker.log", concurrency=2)
        worker.start(app)
        try:
            with app.app_context():
                from mailer.digests.runs import create_digest

                digest_id = create_digest(trigger="test")
            # The reconciler runs all along, as beat would, ready to take any stale claim.
            statuses = finish_with_reconciler(app, digest_id, timeout=150)
        finally:
            worker.stop()
    finally:
        relay.stop()
    return emails, relay, statuses


@pytest.mark.slow
def test_a_relay_slow_at_every_step_just_under_the_timeout_mails_each_reader_once(
    app, isolated, tmp_path
):
    """Every reply of one message in three (banner and EHLO too) comes 0.9 s late with a
    1 s timeout: a batch takes far longer than the 8 s stale time, and keeps its claim."""

    def policy(step: str, ordinal: int) -> Pace:
        return Pace(delay=0.9) if ordinal % 3 == 0 or step in {"banner", "ehlo"} else Pace()

    emails, relay, statuses = run_through(
        app, isolated, tmp_path, policy, 36, {"MAILER_SEND_BATCH_SIZE": "18"}
    )
    assert relay.delivered == Counter(emails), "a reader got none, or two"
    assert statuses == {DeliveryStatus.SENT: 36}  # nothing in doubt: no claim was taken


@pytest.mark.slow
def test_a_relay_trickling_a_reply_past_the_stale_time_mails_each_reader_once(
    app, isolated, tmp_path
):
    """A byte every 0.75 s (no read ever times out) makes the reply to MAIL last 10.5 s,
    past the 8 s stale time. It is cut off at the 1 s timeout, that message is retried,
    and the claim is never taken."""

    def policy(step: str, ordinal: int) -> Pace:
        trickled = step == "mail" and ordinal in {2, 5}
        return Pace(byte_gap=0.75) if trickled else Pace()

    emails, relay, statuses = run_through(
        app, isolated, tmp_path, policy, 20, {"MAILER_SEND_BATCH_SIZE": "20"}
    )
    assert relay.delivered == Counter(emails), "a reader got none, or two"
    assert statuses == {DeliveryStatus.SENT: 20}
