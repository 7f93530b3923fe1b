"""A second beat started by mistake runs every periodic job twice, at the same moment:
each job is safe to run twice at once, so nothing happens twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from mailer.content.feeds import poll_feeds
from mailer.delivery.reconciler import reconcile
from mailer.digests.schedule import run_schedule
from mailer.models import Article, Delivery, DeliveryStatus, Digest, SendClaim
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, make_digest_here
from tests.test_feeds import FeedServer, item, rss


def twice_at_once(app, job: Callable[[], object]) -> list[object]:
    """Runs `job` in two threads released at the same instant, each in its own app context."""
    barrier = threading.Barrier(2)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            barrier.wait()
            try:
                results.append(job())
            except BaseException as exc:  # the test reports it below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_scheduled_digest_is_made_once(app, settings_override, monkeypatch):
    from mailer import delivery
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)  # this test makes the rows
    settings_override(digest_schedule="daily 07:00", timezone="UTC")
    add_readers(app, "beat", 3)
    add_article(app, "Beat", "https://news.example.org/beat")
    at_seven = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
    results = twice_at_once(app, lambda: run_schedule(at_seven))
    assert sorted(r is None for r in results) == [False, True]  # one made it, one found it made
    assert count(app, Digest) == 1
    with app.app_context():
        delivery.materialize_digest(next(r for r in results if r is not None))  # type: ignore[arg-type]
    assert count(app, Delivery) == 3


def test_two_polls_of_a_feed_make_each_article_once(app, settings_override):
    server = FeedServer()
    try:
        server.routes["/rss"] = (200, rss(item(1), item(2)), 0.0)
        settings_override(feeds=(server.url + "/rss",))
        results = twice_at_once(app, poll_feeds)
    finally:
        server.close()
    assert sum(r[server.url + "/rss"] for r in results) == 2  # type: ignore[index]
    assert count(app, Article) == 2


def test_two_reconcilers_settle_a_dead_workers_claim_once(app, monkeypatch):
    from mailer.delivery.claims import claim_rows, open_claim

    add_readers(app, "dead", 4)
    add_article(app, "Dead", "https://news.example.org/dead")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        claim_id = open_claim(digest_id)
        assert claim_id is not None
        claim_rows(claim_id, digest_id, 4)
        with db.transaction():
            db.change(
                update(SendClaim)
                .where(SendClaim.id == claim_id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
            )
    results = twice_at_once(app, reconcile)
    assert sum(r["claims_recovered"] for r in results) == 1  # type: ignore[index]
    # No journal: every claimed row is reported unknown, once, and never resent.
    assert count(app, Delivery, Delivery.status == DeliveryStatus.UNKNOWN) == 4
