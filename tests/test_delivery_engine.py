"""The delivery engine without workers: the journal, the ledger and recovery, row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from aiosmtpd.controller import Controller
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select, update

from mailer import delivery
from mailer.delivery import recovery
from mailer.delivery.claims import claim_rows, open_claim
from mailer.delivery.journal import Journal
from mailer.models import Delivery, DeliveryStatus, SendClaim, Subscriber, utcnow
from mailer.platform.db import db
from tests.conftest import Outbox, free_port
from tests.helpers import add_article, add_readers, make_digest_here


@pytest.fixture
def journal_client(redis_server):
    client = redis.Redis.from_url(redis_server.url_for(7))
    yield client
    client.flushdb()  # database 7 of the suite's own Redis belongs to these tests
    client.close()


def dead_redis() -> redis.Redis:
    """A client of a Redis that is not there (nothing listens on the port): it fails at once."""
    return redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def test_the_journal_records_what_went_and_what_is_on_the_wire(journal_client):
    journal = Journal(journal_client, 1)
    journal.open()
    journal.attempting(10)
    journal.attempting(11, sent_before=10)
    journal.attempting(12, sent_before=11)
    assert journal.read() == (True, {0, 10, 11}, 12)  # 0 is the list's marker entry
    journal.sent(12)
    assert journal.read() == (True, {0, 10, 11, 12}, 12)
    journal.discard()
    assert journal.read() == (False, set(), None)


def test_a_journal_of_the_previous_layout_is_still_read(journal_client):
    """Before the journal was one list, the row on the wire had a key of its own: a claim
    left so by a worker that died during an upgrade is settled as exactly as before."""
    journal_client.set("mailer:claim:3:open", 1)
    journal_client.rpush("mailer:claim:3:sent", 0, 20, 21)
    journal_client.set("mailer:claim:3:inflight", 22)
    journal = Journal(journal_client, 3)
    assert journal.read() == (True, {0, 20, 21}, 22)
    journal.discard()
    assert journal_client.exists("mailer:claim:3:inflight") == 0


def test_a_journal_whose_redis_is_gone_stops_writing_and_lets_sending_go_on():
    journal = Journal(dead_redis(), 2)
    journal.open()
    assert journal.working is False
    journal.attempting(1)  # no error: the send goes on, its rows will be reported unknown
    journal.sent(1)
    with pytest.raises(redis.RedisError):
        journal.read()


@pytest.fixture
def digest_without_workers(app, monkeypatch):
    """A digest of `readers` rows, made without fanning out: the test drives each step."""

    def make(readers: int) -> int:
        add_readers(app, "engine", readers)
        add_article(app, "Engine", "https://news.example.org/engine")
        return make_digest_here(app, monkeypatch)

    return make


def statuses(digest_id: int) -> dict[DeliveryStatus, int]:
    return delivery.status_counts(digest_id)


def claim_and_go_stale(digest_id: int, batch: int) -> tuple[int, list[int]]:
    """Claims `batch` rows, then makes the claim look like its worker died long ago."""
    claim_id = open_claim(digest_id)
    assert claim_id is not None
    rows = [r.delivery_id for r in claim_rows(claim_id, digest_id, batch)]
    with db.transaction():
        db.change(
            update(SendClaim)
            .where(SendClaim.id == claim_id)
            .values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
    return claim_id, rows


def test_recovery_trusts_the_journal_row_by_row(app, digest_without_workers):
    digest_id = digest_without_workers(6)
    with app.app_context():
        claim_id, rows = claim_and_go_stale(digest_id, 5)
        journal = Journal(recovery.redis_client(), claim_id)
        journal.open()
        journal.attempting(rows[0])
        journal.attempting(rows[1], sent_before=rows[0])
        journal.attempting(rows[2], sent_before=rows[1])  # rows[2] on the wire

        assert delivery.recover_stale_claims() == 1
        by_row = dict(
            db.session.execute(
                select(Delivery.id, Delivery.status).where(Delivery.id.in_(rows))
            ).all()
        )
        assert [by_row[r] for r in rows] == [
            DeliveryStatus.SENT,
            DeliveryStatus.SENT,
            DeliveryStatus.UNKNOWN,
            DeliveryStatus.PENDING,
            DeliveryStatus.PENDING,
        ]
        assert statuses(digest_id)[DeliveryStatus.PENDING] == 3  # two given back, one unclaimed
        assert journal.read()[0] is False  # settled journals are removed
        assert delivery.recover_stale_claims() == 0  # a claim is settled once


def test_a_lost_journal_marks_every_claimed_row_unknown_never_resent(app, digest_without_workers):
    digest_id = digest_without_workers(4)
    with app.app_context():
        _claim_id, rows = claim_and_go_stale(digest_id, 3)  # no journal was ever written
        assert delivery.recover_stale_claims() == 1
        replies = db.session.execute(
            select(Delivery.status, Delivery.smtp_reply).where(Delivery.id.in_(rows))
        ).all()
    assert {status for status, _reply in replies} == {DeliveryStatus.UNKNOWN}
    assert all("journal was lost" in reply for _status, reply in replies)


def test_an_unreadable_journal_leaves_the_claim_for_the_next_round(
    app, digest_without_workers, monkeypatch
):
    digest_id = digest_without_workers(3)
    with app.app_context():
        claim_id, _rows = claim_and_go_stale(digest_id, 3)
        dead = dead_redis()
        monkeypatch.setattr(recovery, "redis_client", lambda: dead)
        assert delivery.recover_stale_claims() == 0
        assert statuses(digest_id) == {DeliveryStatus.CLAIMED: 3}
        assert db.session.get_one(SendClaim, claim_id).finished is False

        monkeypatch.undo()
        assert delivery.recover_stale_claims() == 1  # Redis is back: no journal, so unknown
        assert statuses(digest_id) == {DeliveryStatus.UNKNOWN: 3}


def test_an_unreachable_relay_gives_the_rows_back_without_using_an_attempt(
    app, digest_without_workers, settings_override, outbox
):
    digest_id = digest_without_workers(4)
    settings_override(smtp_port=free_port())  # nothing listens there
    with app.app_context():
        result = delivery.send_batch(digest_id)
        rows = db.session.execute(
            select(Delivery.status, Delivery.attempts, Delivery.claim_id)
        ).all()
        claims = db.session.scalars(select(SendClaim.finished)).all()
    assert result.claimed == 4 and result.sent == 0
    assert result.retry_in is not None  # a retry task is due, not a lost send
    assert rows == [(DeliveryStatus.RETRYING, 0, None)] * 4
    assert claims == [True]
    assert outbox.count() == 0


def test_the_ledger_records_each_answer_of_the_relay(app, digest_without_workers, outbox):
    digest_id = digest_without_workers(3)
    outbox.refuse("engine1@example.org", "450 4.2.1 Mailbox busy")
    outbox.refuse("engine2@example.org", "550 5.1.1 No such user")
    with app.app_context():
        result = delivery.send_batch(digest_id)
        rows = dict(
            db.session.execute(
                select(Delivery.subscriber_id, Delivery.status).order_by(Delivery.id)
            ).all()
        )
        replies = db.session.scalars(
            select(Delivery.smtp_reply).where(Delivery.smtp_reply.is_not(None))
        ).all()
    assert (result.sent, result.failed, result.retrying) == (1, 1, 1)
    assert sorted(rows.values()) == sorted(
        [DeliveryStatus.SENT, DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
    )
    assert any(reply.startswith("550") for reply in replies)
    assert any(reply.startswith("450") for reply in replies)


def test_a_batch_told_where_its_rows_start_claims_from_there_then_from_anywhere(
    app, digest_without_workers
):
    digest_id = digest_without_workers(10)
    with app.app_context():
        ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.digest_id == digest_id)))
        first = open_claim(digest_id)
        assert [r.delivery_id for r in claim_rows(first, digest_id, 4, ids[6])] == ids[6:10]
        # Fewer than a batch left from its start: the rest comes from the lowest ids.
        second = open_claim(digest_id)
        assert [r.delivery_id for r in claim_rows(second, digest_id, 4, ids[8])] == ids[:4]
        third = open_claim(digest_id)
        assert [r.delivery_id for r in claim_rows(third, digest_id, 4)] == ids[4:6]


class JournalWitness(Outbox):
    """A relay that, as each message's body arrives, reads what the journal says:
    which row is on the wire and which went before it."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client
        self.seen: list[tuple[str, int, set[int]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        (opened,) = self.client.keys("mailer:claim:*:open")
        _opened, sent, row = Journal(self.client, int(opened.split(b":")[2])).read()
        assert row is not None
        self.seen.append((envelope.rcpt_tos[0], row, sent))
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_row_is_in_the_journal_before_the_relay_has_its_body(
    app, digest_without_workers, settings_override, pipelining
):
    """The note is made while the relay answers the envelope, yet always before the body
    that alone lets the relay accept the message."""
    digest_id = digest_without_workers(4)
    with app.app_context():
        witness = JournalWitness(recovery.redis_client())
        witness.pipelining = pipelining
        controller = Controller(witness, hostname="127.0.0.1", port=free_port())
        controller.start()
        try:
            settings_override(smtp_port=controller.port)
            result = delivery.send_batch(digest_id)
        finally:
            controller.stop()
        row_of = dict(
            db.session.execute(
                select(Subscriber.email, Delivery.id).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
    assert result.sent == 4
    assert [row for _to, row, _sent in witness.seen] == [row_of[to] for to, _r, _s in witness.seen]
    for index, (_to, _row, sent) in enumerate(witness.seen):
        # Every row that went before is listed as sent, the one just before included:
        # its entry travels with this row's note.
        assert sent >= {row for _to, row, _sent in witness.seen[:index]}
