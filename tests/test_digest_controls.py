"""An editor's controls over a digest in flight: pause, resume, cancel, retry failed."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer import delivery
from mailer.delivery import controls as digest_controls
from mailer.delivery.reconciler import reconcile
from mailer.digests import runs as digests
from mailer.models import (
    Delivery,
    DeliveryStatus,
    SendClaim,
    Subscriber,
    SubscriberStatus,
)
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, wait_until

READERS = 150


def start(app, readers: int = READERS) -> tuple[int, list[str]]:
    emails = add_readers(app, "ctl", readers)
    add_article(app, "Controls", "https://news.example.org/ctl")
    with app.app_context():
        return digests.create_digest(trigger="test"), emails


def progress(app, digest_id: int) -> dict:
    with app.app_context():
        return delivery.digest_progress(digest_id)


def quiet(app, digest_id: int) -> bool:
    """No batch holds rows of this digest any more."""
    with app.app_context():
        claimed = db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.CLAIMED)
        )
        running = db.session.scalar(
            select(func.count())
            .select_from(SendClaim)
            .where(SendClaim.digest_id == digest_id, SendClaim.finished.is_(False))
        )
    return claimed == 0 and running == 0


@pytest.mark.slow  # a real worker sends twice
def test_pause_stops_sending_and_resume_finishes_it_once(app, worker, outbox):
    outbox.delay = 0.01
    digest_id, emails = start(app)
    wait_until(lambda: outbox.count() >= 20, message="sending did not start")
    with app.app_context():
        digest_controls.pause_digest(digest_id)
    wait_until(lambda: quiet(app, digest_id), timeout=20, message="batches did not stop")
    paused = progress(app, digest_id)
    assert paused["status"] == "paused"
    assert paused["sent"] < READERS
    with app.app_context():
        assert reconcile()["digests_resumed"] == 0  # a paused digest is left alone
        digest_controls.resume_digest(digest_id)
    done = wait_until(
        lambda: (p := progress(app, digest_id))["status"] == "sent" and p,
        timeout=60,
        message="the resumed digest did not finish",
    )
    assert done["sent"] == READERS
    received = Counter(str(m["To"]) for m in outbox.messages)
    assert set(received) == set(emails) and max(received.values()) == 1


def test_cancel_skips_everyone_not_yet_reached(app, worker, outbox):
    outbox.delay = 0.01
    digest_id, _emails = start(app)
    wait_until(lambda: outbox.count() >= 20, message="sending did not start")
    with app.app_context():
        digest_controls.cancel_digest(digest_id)
    done = wait_until(
        lambda: (p := progress(app, digest_id))["status"] == "cancelled" and p,
        timeout=30,
        message="the cancelled digest did not end",
    )
    assert done["skipped"] > 0
    assert done["sent"] + done["skipped"] == READERS
    assert done["sent"] == outbox.count()
    assert max(Counter(str(m["To"]) for m in outbox.messages).values()) == 1


def test_a_digest_cancelled_before_any_mail_went_out_gives_its_articles_back(
    app, monkeypatch, outbox
):
    from mailer.content import articles
    from tests.helpers import make_digest_here

    add_readers(app, "early", 3)
    add_article(app, "Given back", "https://news.example.org/back")
    digest_id = make_digest_here(app, monkeypatch)  # rows made, no batch has run
    with app.app_context():
        digest_controls.cancel_digest(digest_id)
        assert [a.title for a in articles.waiting_articles()] == ["Given back"]
        assert digests.digest_articles(digest_id) == []
        again = digests.create_digest(trigger="test")  # the next digest carries them
        assert [a.title for a in digests.digest_articles(again)] == ["Given back"]
    assert progress(app, digest_id)["status"] == "cancelled"


def test_a_digest_cancelled_after_its_first_mail_keeps_its_articles(app, monkeypatch, outbox):
    from mailer.content import articles
    from tests.helpers import make_digest_here

    add_readers(app, "late", 30)
    add_article(app, "Kept", "https://news.example.org/kept")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        delivery.send_batch(digest_id)  # the first batch (20 of the 30) went out
        digest_controls.cancel_digest(digest_id)
        assert articles.waiting_articles() == []
        assert [a.title for a in digests.digest_articles(digest_id)] == ["Kept"]


@pytest.mark.slow  # a real worker sends twice
def test_retry_failed_resends_only_temporary_failures_to_active_readers(app, worker, outbox):
    busy, bounced, left, *others = [f"ctl{n}@example.org" for n in range(6)]
    outbox.refuse(busy, "452 4.2.2 Mailbox full")
    outbox.refuse(left, "452 4.2.2 Mailbox full")
    outbox.refuse(bounced, "550 5.1.1 No such user")
    digest_id, _emails = start(app, readers=6)
    first = wait_until(
        lambda: (p := progress(app, digest_id))["status"] == "sent_with_failures" and p,
        timeout=30,
        message="the digest did not finish",
    )
    assert first["failed"] == 3 and first["sent"] == 3
    with app.app_context():
        reader = db.session.scalar(select(Subscriber).where(Subscriber.email == left))
        reader.status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    outbox.refusals.clear()
    with app.app_context():
        assert digest_controls.retry_failed(digest_id) == 1  # not the 5xx, not the reader who left
    second = wait_until(
        lambda: (p := progress(app, digest_id))["done"] and p,
        timeout=30,
        message="the retry did not finish",
    )
    assert second["sent"] == 4
    assert len(outbox.to(busy)) == 1
    assert outbox.to(bounced) == [] and outbox.to(left) == []
    assert all(len(outbox.to(e)) == 1 for e in others)
