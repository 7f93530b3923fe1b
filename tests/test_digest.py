"""Articles in, digests out: the API, the digest and the send engine, with a real worker."""

from __future__ import annotations

import hashlib
import re
import threading

import pytest
from sqlalchemy import func, select

from mailer import delivery
from mailer.access.api_tokens import create_api_token, revoke_api_token
from mailer.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Digest,
    Subscriber,
    SubscriberStatus,
)
from mailer.platform.db import db
from tests.helpers import add_readers, html_body, make_digest_here, text_body, wait_until


@pytest.fixture
def token(app) -> str:
    with app.app_context():
        return create_api_token("site")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_article(client, token: str, **fields):
    return client.post("/api/articles", json=fields, headers=auth(token))


def wait_for_digest(client, token: str, digest_id: int, timeout: float = 30) -> dict:
    def finished():
        body = client.get(f"/api/digests/{digest_id}", headers=auth(token)).get_json()
        return body if body["done"] else None

    return wait_until(finished, timeout=timeout, message=f"digest {digest_id} did not finish")


def test_every_active_reader_gets_exactly_one_digest(app, client, worker, outbox, token):
    active = add_readers(app, "active", 45, SubscriberStatus.ACTIVE)
    pending = add_readers(app, "pending", 3, SubscriberStatus.PENDING)
    gone = add_readers(app, "gone", 3, SubscriberStatus.UNSUBSCRIBED)
    first = post_article(
        client,
        token,
        title="“Turkey” — Çavuşoğlu, Erdoğan meet",
        url="https://news.example.org/a/1",
        summary="Talks in Ankara.",
        author="Zeynep Ö.",
        published_at="2026-11-24T08:00:00Z",
    )
    assert first.status_code == 201
    assert (
        post_article(client, token, title="Second", url="https://news.example.org/a/2").status_code
        == 201
    )

    response = client.post("/api/digests", headers=auth(token))
    assert response.status_code == 202
    digest_id = response.get_json()["id"]
    result = wait_for_digest(client, token, digest_id)
    assert result["status"] == "sent"
    assert result["total"] == 45
    assert result["sent"] == 45
    assert result["pending"] == result["failed"] == result["unknown"] == 0

    for email in active:
        assert len(outbox.wait_for(email)) == 1
    for email in pending + gone:
        assert outbox.to(email) == []
    assert outbox.count() == 45

    again = client.post("/api/digests", headers=auth(token))
    assert again.status_code == 409
    assert "no new articles" in again.get_data(as_text=True), again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 1
        # Each article is in exactly this digest.
        assert set(db.session.scalars(select(Article.digest_id))) == {digest_id}


def test_a_digest_has_the_headers_and_bodies_mailbox_providers_require(
    app, client, worker, outbox, token
):
    [reader] = add_readers(app, "headers", 1, SubscriberStatus.ACTIVE)
    post_article(
        client,
        token,
        title="“Turkey” — Çavuşoğlu, Erdoğan meet",
        url="https://news.example.org/a/tr",
        summary="Ünïcödé in the summary.",
    )
    digest_id = client.post("/api/digests", headers=auth(token)).get_json()["id"]
    [mail] = outbox.wait_for(reader)

    assert str(mail["Subject"]) == "Example News: “Turkey” — Çavuşoğlu, Erdoğan meet"
    assert str(mail["From"]) == "Example News <news@news.example.org>"
    assert mail["To"] == reader
    assert mail["Date"]
    # Unique, on the sending domain, and saying nothing of how many digests or readers.
    assert re.fullmatch(r"<[a-z2-7]{32}@news\.example\.org>", mail["Message-ID"])
    assert (
        mail["Feedback-ID"]
        == f"{digest_id}:digest.news.example.org:mailer:"
        + (hashlib.sha256(b"digest.news.example.org").hexdigest()[:12])
    )
    assert mail["Precedence"] == "bulk"
    # VERP: the envelope sender names this delivery, for the bounce to come back to.
    sender, _recipients = outbox.envelopes[-1]
    assert re.fullmatch(r"bounces\+d[1-9][0-9]*-[a-z2-7]{16}@news\.example\.org", sender)
    assert mail["List-Id"] == "Example News <digest.news.example.org>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_link, mailto = [p.strip(" <>") for p in mail["List-Unsubscribe"].split(",")]
    assert https_link.startswith("https://news.example.org/unsubscribe/")
    assert mailto.startswith("mailto:unsubscribe@news.example.org?subject=unsubscribe")
    # On the wire the header is plain ASCII, not RFC 2047 encoded words.
    [raw] = [r for r in outbox.raw if f"To: {reader}".encode() in r]
    header = raw.split(b"\r\nList-Unsubscribe:", 1)[1].split(b"\r\n")[0]
    assert b"<https://news.example.org/unsubscribe/" in header
    assert b"<mailto:unsubscribe@news.example.org?subject=unsubscribe%20" in header
    assert b"=?" not in header
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    # The Subject on the wire: RFC 2047 encoded words of at most 75 characters each.
    subject = raw.split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0]
    folded = raw.split(b"\r\nSubject: ", 1)[1].split(b"\r\n")
    lines = [subject, *[line for line in folded[1:] if line.startswith(b" ")][:10]]
    words = [w for line in lines for w in line.split() if w.startswith(b"=?")]
    assert words and all(len(word) <= 75 for word in words)
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text, html = text_body(mail), html_body(mail)
    for body in (text, html):
        assert https_link in body  # the visible unsubscribe link
        assert "Çavuşoğlu" in body
        assert "__MAILER_" not in body
    assert "Ünïcödé in the summary." in text
    assert len(html.encode()) < 100 * 1024
    assert 'style="' in html  # CSS inlined
    assert "<style" not in html.split("<body", 1)[1]

    # The one-click link in the header unsubscribes the reader.
    path = https_link.removeprefix("https://news.example.org")
    response = app.test_client(use_cookies=False).post(
        path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert response.status_code == 200
    with app.app_context():
        status = db.session.scalar(select(Subscriber.status).where(Subscriber.email == reader))
    assert status == SubscriberStatus.UNSUBSCRIBED


@pytest.mark.slow  # waits out retry delays
def test_temporary_refusals_are_retried_and_permanent_ones_recorded(
    app, client, worker, outbox, token
):
    readers = add_readers(app, "smtp", 10, SubscriberStatus.ACTIVE)
    outbox.refuse(readers[0], "450 4.2.1 Mailbox busy, try later", times=2)
    outbox.refuse(readers[1], "451 4.3.0 Temporary local problem", times=1)
    outbox.refuse(readers[2], "550 5.1.1 No such user here")
    post_article(client, token, title="Retries", url="https://news.example.org/a/retry")
    digest_id = client.post("/api/digests", headers=auth(token)).get_json()["id"]

    result = wait_for_digest(client, token, digest_id)
    assert result["status"] == "sent_with_failures"
    assert result["sent"] == 9
    assert result["failed"] == 1
    for email in readers[:2] + readers[3:]:
        assert len(outbox.wait_for(email)) == 1
    assert outbox.to(readers[2]) == []
    with app.app_context():
        failed = db.session.execute(
            select(Subscriber.email, Delivery.smtp_reply, Delivery.attempts)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.status == DeliveryStatus.FAILED)
        ).all()
        retried = db.session.scalar(
            select(Delivery.attempts)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == readers[0])
        )
    assert failed == [(readers[2], "550 5.1.1 No such user here", 1)]
    assert retried == 3  # two refusals, then delivered


def test_two_triggers_at_once_make_one_digest(app, client, worker, token):
    add_readers(app, "race", 5, SubscriberStatus.ACTIVE)
    post_article(client, token, title="Race", url="https://news.example.org/a/race")
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def trigger() -> None:
        barrier.wait()
        statuses.append(app.test_client().post("/api/digests", headers=auth(token)).status_code)

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [202, 409]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 1
    # The rows are made by a worker once the trigger has answered.
    wait_until(lambda: count_rows(app, Delivery) == 5, message="the delivery rows were not made")


def count_rows(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_the_article_api_requires_a_live_token(app, client, token):
    body = {"title": "T", "url": "https://news.example.org/a/t"}
    for headers in ({}, {"Authorization": "Bearer mlr_wrong"}, {"Authorization": token}):
        response = client.post("/api/articles", json=body, headers=headers)
        assert response.status_code == 401
        assert "API token" in response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with app.app_context():
        assert revoke_api_token("site")
    assert post_article(client, token, **body).status_code == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "https://news.example.org/x"}, "'title' is required"),
        ({"title": "T"}, "'url' is required"),
        ({"title": "T", "url": "/relative"}, "absolute http"),
        ({"title": "T", "url": "javascript:alert(1)"}, "absolute http"),
        (
            {"title": "T", "url": "https://n.example.org/x", "colour": "red"},
            "Unknown fields: colour",
        ),
        ({"title": "T\r\nBcc: x", "url": "https://n.example.org/x"}, "single line"),
        ({"title": 5, "url": "https://n.example.org/x"}, "'title' must be a string"),
        ({"title": "T", "url": "https://n.example.org/x", "published_at": "soon"}, "ISO 8601"),
        ([{"title": "T"}], "JSON object"),
    ],
)
def test_bad_articles_are_refused_with_a_clear_message(app, client, token, body, message):
    response = client.post("/api/articles", json=body, headers=auth(token))
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 0


def test_article_html_is_sanitized(app, client, token):
    response = post_article(
        client,
        token,
        title="Sanitized",
        url="https://news.example.org/a/s",
        body_html=(
            '<p onclick="steal()">Hi <script>alert(1)</script><b>there</b></p>'
            '<link rel="stylesheet" href="https://evil.example/x.css">'
            '<style>body{display:none}</style><a href="javascript:x()">x</a>'
            '<img src="https://news.example.org/i.png" onerror="steal()">'
        ),
    )
    assert response.status_code == 201
    with app.app_context():
        html = db.session.scalar(select(Article.body_html))
    for bad in ("onclick", "<script", "alert", "<link", "<style", "javascript:", "onerror"):
        assert bad not in html
    assert "<b>there</b>" in html
    assert 'src="https://news.example.org/i.png"' in html


def test_the_same_url_or_guid_is_not_a_second_article(app, client, token):
    first = post_article(client, token, title="One", url="https://news.example.org/a/1", guid="g-1")
    assert first.status_code == 201
    same_url = post_article(client, token, title="One again", url="https://news.example.org/a/1")
    same_guid = post_article(
        client, token, title="Moved", url="https://news.example.org/b", guid="g-1"
    )
    for response in (same_url, same_guid):
        assert response.status_code == 200
        assert response.get_json()["id"] == first.get_json()["id"]
        assert response.get_json()["created"] is False
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 1


@pytest.mark.slow
def test_a_burst_of_a_thousand_articles_is_all_accepted(app, client, token):
    for n in range(1000):
        response = post_article(
            client, token, title=f"Burst {n}", url=f"https://news.example.org/burst/{n}"
        )
        assert response.status_code == 201
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 1000


def test_a_reader_who_unsubscribes_after_the_digest_is_made_is_skipped(app, outbox, monkeypatch):
    """The claim re-checks each reader, so an unsubscribe counts before the next claim."""
    from mailer.subscribers import subscriptions

    readers = add_readers(app, "late", 3, SubscriberStatus.ACTIVE)
    with app.app_context():
        db.session.add(Article(title="Late", url="https://news.example.org/late", source="test"))
        db.session.commit()
    # Made without fanning out, so no worker races this test; it sends the batch itself.
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        leaver = db.session.scalar(select(Subscriber.id).where(Subscriber.email == readers[0]))
        db.session.rollback()
        subscriptions.unsubscribe(leaver)
        result = delivery.send_batch(digest_id)
        assert result.sent == 2
        info = delivery.digest_progress(digest_id)
    assert info["skipped"] == 1
    assert info["status"] == "sent"
    assert outbox.to(readers[0]) == []
    assert len(outbox.to(readers[1])) == 1
