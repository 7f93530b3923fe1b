"""A blocklisting at one big provider, as a relay answers it (550 5.7.1 for every reader
there): every one of those readers stays active, the console names the domain, the reason
and the server's words, and the mails go out again once the cause is fixed (issue 19)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer import delivery
from mailer.models import Bounce, BounceKind, Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.helpers import add_article, make_digest_here

pytestmark = pytest.mark.integration

BLOCKED = "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org"


def add_readers_at(app, domain: str, count: int) -> list[str]:
    emails = [f"reader{n}@{domain}" for n in range(count)]
    with app.app_context():
        for email in emails:
            db.session.add(Subscriber(email=email, email_key=email, status=SubscriberStatus.ACTIVE))
        db.session.commit()
    return emails


def test_a_blocklisting_at_one_domain_leaves_its_readers_active_and_is_shown(
    app, console, outbox, monkeypatch
):
    blocked = add_readers_at(app, "bigmail.example", 8)
    others = add_readers_at(app, "elsewhere.example", 4)
    for email in blocked:
        outbox.refuse(email, BLOCKED)
    add_article(app, "Blocked", "https://news.example.org/blocked")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        delivery.send_batch(digest_id)
        statuses = dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())
        refused = db.session.scalars(select(Bounce).where(Bounce.kind == BounceKind.REFUSED)).all()
    assert all(statuses[e] == SubscriberStatus.ACTIVE for e in blocked + others)
    assert len(refused) == 8
    assert {(b.reason, b.domain) for b in refused} == {("blocked", "bigmail.example")}
    assert len(outbox.messages) == 4

    page = console.get(f"/editor/digests/{digest_id}").get_data(as_text=True)
    assert "bigmail.example refused 8 of 8 mails" in page
    assert "blocked" in page and "zen.spamhaus.org" in page

    # Delisted: the editor sends the refused mails again, and each reader there gets one.
    outbox.refusals.clear()
    with app.app_context():
        from mailer.delivery import controls

        assert controls.retry_refused(digest_id, "bigmail.example") == 8
        delivery.send_batch(digest_id)
        sent = db.session.scalars(
            select(Delivery.status).where(Delivery.digest_id == digest_id)
        ).all()
    assert sent == [DeliveryStatus.SENT] * 12
    assert sorted(m["To"] for m in outbox.messages) == sorted(blocked + others)
