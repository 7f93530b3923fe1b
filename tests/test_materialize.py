"""Delivery rows made by a worker after the trigger answered: a range of ids at a time."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from mailer import delivery
from mailer.delivery.rows import finish_if_done, materialize_next
from mailer.digests import runs as digests
from mailer.models import Delivery, Digest, DigestStatus, Subscriber
from mailer.platform import jobs
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, wait_until


def rows(app, digest_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.digest_id == digest_id)
        )


def made_without_rows(app, monkeypatch, readers: int) -> int:
    add_readers(app, "m", readers)
    add_article(app, "Materialized", "https://news.example.org/m")
    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)
    with app.app_context():
        return digests.create_digest(trigger="test")


def test_the_trigger_answers_before_any_row_is_made_and_a_worker_makes_them(
    app, client, worker, outbox
):
    from mailer.access.api_tokens import create_api_token

    emails = add_readers(app, "quick", 30)
    add_article(app, "Quick", "https://news.example.org/quick")
    with app.app_context():
        token = create_api_token("site")
    headers = {"Authorization": f"Bearer {token}"}
    answer = client.post("/api/digests", headers=headers)
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status"] == "preparing" and body["done"] is False
    done = wait_until(
        lambda: (
            (p := client.get(f"/api/digests/{body['id']}", headers=headers).get_json())["done"]
            and p
        ),
        timeout=30,
        message="the digest did not finish",
    )
    assert done["status"] == "sent" and done["total"] == done["sent"] == 30
    for email in emails:
        assert len(outbox.wait_for(email)) == 1


def test_a_digest_is_not_finished_while_its_rows_are_being_made(app, monkeypatch):
    digest_id = made_without_rows(app, monkeypatch, 3)
    with app.app_context():
        assert finish_if_done(digest_id) is False  # no row yet, and not all made
        assert db.session.get_one(Digest, digest_id).status == DigestStatus.SENDING


def test_a_stopped_materializer_is_taken_over_where_it_stopped(app, monkeypatch):
    import mailer.delivery.rows

    digest_id = made_without_rows(app, monkeypatch, 5)
    with app.app_context():
        first_id = db.session.scalar(select(func.min(Subscriber.id)))
        # Ranges of two ids, the first one ending at the first reader: three ranges for five.
        monkeypatch.setattr(mailer.delivery.rows, "FIRST_CHUNK", first_id)
        monkeypatch.setattr(mailer.delivery.rows, "MATERIALIZE_CHUNK", 2)
        first = materialize_next(digest_id)
        second = materialize_next(digest_id)  # then the worker died
        assert (first.rows, second.rows) == (1, 2) and not second.done
        assert rows(app, digest_id) == 3
        delivery.materialize_digest(digest_id)  # another one, started by the reconciler
        digest = db.session.get_one(Digest, digest_id)
        assert digest.materialized_at is not None
        assert digest.total == 5
    assert rows(app, digest_id) == 5


def test_two_materializers_at_once_make_each_row_once(app, monkeypatch):
    digest_id = made_without_rows(app, monkeypatch, 40)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            barrier.wait()
            try:
                delivery.materialize_digest(digest_id)
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert rows(app, digest_id) == 40
    with app.app_context():
        assert db.session.get_one(Digest, digest_id).total == 40


def test_progress_of_a_sending_digest_reuses_a_recent_count_and_a_finished_one_counts_afresh(
    app, monkeypatch
):
    import json

    from sqlalchemy import update

    from mailer.delivery.progress import LONGEST_REUSE
    from mailer.platform.redis_client import redis_client

    digest_id = made_without_rows(app, monkeypatch, 5)
    with app.app_context():
        delivery.materialize_digest(digest_id)
        key = f"mailer:progress:{digest_id}"
        assert delivery.digest_progress(digest_id)["pending"] == 5
        # A count is kept at most LONGEST_REUSE seconds (ten times its cost, here far less).
        assert redis_client().pttl(key) <= LONGEST_REUSE * 1000
        redis_client().set(key, json.dumps({"sent": 4, "pending": 1}), px=60_000)
        assert (
            delivery.digest_progress(digest_id)["sent"],
            delivery.digest_progress(digest_id)["pending"],
        ) == (
            4,
            1,
        )
        with db.transaction():
            db.change(update(Digest).where(Digest.id == digest_id).values(status=DigestStatus.SENT))
        finished = delivery.digest_progress(digest_id)
        assert (finished["sent"], finished["pending"]) == (0, 5)
