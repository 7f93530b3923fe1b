"""A digest survives a SIGKILLed worker and a Redis that restarts empty, with no duplicates."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import insert, select

from mailer.access.api_tokens import create_api_token
from mailer.delivery.reconciler import reconcile
from mailer.models import Delivery, DeliveryStatus, SendClaim, Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.conftest import RedisServer, Worker
from tests.helpers import signup, wait_until

READERS = 240
pytestmark = pytest.mark.slow


def start_digest(app) -> tuple[int, list[str]]:
    emails = [f"r{n}@example.org" for n in range(READERS)]
    with app.app_context():
        db.session.execute(
            insert(Subscriber),
            [{"email": e, "email_key": e, "status": SubscriberStatus.ACTIVE} for e in emails],
        )
        db.session.commit()
        token = create_api_token("resilience")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client.post(
            "/api/articles",
            json={"title": "Resilience", "url": "https://news.example.org/r"},
            headers=headers,
        ).status_code
        == 201
    )
    response = client.post("/api/digests", headers=headers)
    assert response.status_code == 202
    return response.get_json()["id"], emails


def finish_with_reconciler(app, digest_id: int, timeout: float = 90) -> dict[str, int]:
    """Runs the reconciler, as beat would every minute, until the digest is done."""

    def done():
        with app.app_context():
            reconcile()
            statuses = Counter(
                db.session.scalars(select(Delivery.status).where(Delivery.digest_id == digest_id))
            )
        owed = statuses[DeliveryStatus.PENDING] + statuses[DeliveryStatus.CLAIMED]
        return statuses if owed == 0 and statuses[DeliveryStatus.RETRYING] == 0 else None

    return wait_until(done, timeout=timeout, message="the digest did not complete")


def rows_by_status(app, digest_id: int, status: DeliveryStatus) -> set[str]:
    with app.app_context():
        return set(
            db.session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.digest_id == digest_id, Delivery.status == status)
            )
        )


def test_a_killed_worker_leaves_at_most_one_row_in_doubt(app, isolated, outbox, tmp_path):
    app, env = isolated()
    outbox.delay = 0.01  # slow enough to kill the worker in the middle
    first = Worker(env, tmp_path / "killed.log", concurrency=1)
    first.start(app)
    digest_id, emails = start_digest(app)
    wait_until(lambda: outbox.count() >= 50, timeout=30, message="sending did not start")
    first.kill()
    sent_before_kill = outbox.count()
    assert sent_before_kill < READERS, "the worker finished before it could be killed"

    second = Worker(env, tmp_path / "second.log", concurrency=1)
    second.start(app)
    try:
        statuses = finish_with_reconciler(app, digest_id)
    finally:
        second.stop()

    received = Counter(str(m["To"]) for m in outbox.messages)
    assert max(received.values()) == 1, "somebody got the digest twice"
    unknown = rows_by_status(app, digest_id, DeliveryStatus.UNKNOWN)
    assert statuses[DeliveryStatus.UNKNOWN] == len(unknown) <= 1
    assert statuses[DeliveryStatus.SENT] + len(unknown) == READERS
    for email in set(emails) - unknown:
        assert received[email] == 1, email
    with app.app_context():
        from mailer.delivery import digest_progress

        info = digest_progress(digest_id)
    assert info["unknown"] == len(unknown)
    assert info["status"] == ("sent_with_failures" if unknown else "sent")


def test_redis_restarted_empty_mid_send_loses_nothing_and_sends_nothing_twice(
    app, isolated, outbox, tmp_path_factory, tmp_path
):
    own_redis = RedisServer(tmp_path_factory.mktemp("own-redis"))
    own_redis.start()
    try:
        app, env = isolated(own_redis.url_for(0))
        outbox.delay = 0.01
        worker = Worker(env, tmp_path / "worker.log", concurrency=2)
        worker.start(app)
        try:
            digest_id, emails = start_digest(app)
            wait_until(lambda: outbox.count() >= 40, timeout=30, message="sending did not start")
            own_redis.restart_empty()  # the queued batch tasks are gone
            assert outbox.count() < READERS
            statuses = finish_with_reconciler(app, digest_id)
        finally:
            worker.stop()
    finally:
        own_redis.stop()

    received = Counter(str(m["To"]) for m in outbox.messages)
    assert statuses[DeliveryStatus.SENT] == READERS
    assert statuses[DeliveryStatus.UNKNOWN] == 0
    assert set(received) == set(emails)
    assert max(received.values()) == 1


def test_two_worker_processes_send_one_digest_together_each_row_once(
    app, isolated, outbox, tmp_path
):
    app, env = isolated()
    outbox.delay = 0.002
    workers = [Worker(env, tmp_path / f"w{n}.log", concurrency=1) for n in range(2)]
    for w in workers:
        w.start(app)
    try:
        digest_id, emails = start_digest(app)
        statuses = finish_with_reconciler(app, digest_id, timeout=60)
    finally:
        for w in workers:
            w.stop()
    received = Counter(str(m["To"]) for m in outbox.messages)
    assert statuses[DeliveryStatus.SENT] == READERS
    assert set(received) == set(emails)
    assert max(received.values()) == 1
    with app.app_context():
        processes = set(
            db.session.scalars(select(SendClaim.worker).where(SendClaim.digest_id == digest_id))
        )
    assert len(processes) >= 2, "one process did all the work; the test proves nothing"


def test_a_worker_killed_while_sending_a_confirmation_delays_it_by_minutes_not_an_hour(
    app, isolated, outbox, tmp_path
):
    app, env = isolated()
    outbox.delay = 3  # the relay is slow: the worker is killed with the mail on the wire
    first = Worker(env, tmp_path / "killed.log", concurrency=1)
    first.start(app)
    client = app.test_client()
    assert signup(client, "waiting@example.org").status_code == 200
    with app.app_context():
        wait_until(
            lambda: db.session.scalar(
                select(Subscriber.confirmation_claimed_at).where(
                    Subscriber.email_key == "waiting@example.org"
                )
            ),
            timeout=20,
            message="the confirmation was not claimed",
        )
        db.session.rollback()
    first.kill()
    outbox.delay = 0
    second = Worker(env, tmp_path / "second.log", concurrency=1)
    second.start(app)
    try:
        # Past the stale time (8 s in the tests, 3 minutes by default), the reconciler
        # (beat, every minute) queues it again: the reader gets it.
        def sent_again():
            with app.app_context():
                reconcile()
            return outbox.to("waiting@example.org")

        received = wait_until(sent_again, timeout=40, message="the confirmation never came")
    finally:
        second.stop()
    assert len(received) >= 1
    with app.app_context():
        row = db.session.scalars(
            select(Subscriber).where(Subscriber.email_key == "waiting@example.org")
        ).one()
    assert row.confirmation_sent_at == row.confirmation_requested_at
    assert row.confirmation_claimed_at is None
