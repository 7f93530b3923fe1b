"""The reader's journey end to end: real Redis, a real SMTP server, a real Celery worker."""

from __future__ import annotations

from sqlalchemy import select

from mailer.mail.links import unsubscribe_url
from mailer.models import Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.helpers import hidden_fields, link_path, reader_link, signup, text_body, wait_until


def subscriber(app, email: str) -> Subscriber | None:
    with app.app_context():
        return db.session.scalar(select(Subscriber).where(Subscriber.email_key == email.lower()))


def test_reader_signs_up_confirms_and_unsubscribes(app, client, worker, outbox):
    response = signup(client, "reader@example.org", name="Ada Reader")
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)
    assert subscriber(app, "reader@example.org").status == SubscriberStatus.PENDING

    [mail] = outbox.wait_for("reader@example.org")
    assert "Confirm your subscription" in str(mail["Subject"])
    assert mail["Message-ID"].endswith("@news.example.org>")
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    confirm_path = link_path(text_body(mail), "/confirm/")

    # A link scanner's GET changes nothing.
    page = client.get(confirm_path)
    assert page.status_code == 200
    assert "Yes, subscribe me" in page.get_data(as_text=True)
    assert subscriber(app, "reader@example.org").status == SubscriberStatus.PENDING

    fields = hidden_fields(page.get_data(as_text=True))
    confirmed = client.post(confirm_path, data={"csrf_token": fields["csrf_token"]})
    assert confirmed.status_code == 200
    assert "subscribed" in confirmed.get_data(as_text=True)
    row = subscriber(app, "reader@example.org")
    assert row.status == SubscriberStatus.ACTIVE
    assert row.confirmed_at is not None
    assert row.consent_source == "subscribe-page"
    assert "unsubscribe at any time" in row.consent_text

    # Unsubscribe from a browser with no session at all (no cookies, no CSRF token).
    with app.app_context():
        unsubscribe_path = unsubscribe_url(row.id, row.link_key).removeprefix(
            "https://news.example.org"
        )
    fresh = app.test_client()
    assert fresh.get(unsubscribe_path).status_code == 200
    assert subscriber(app, "reader@example.org").status == SubscriberStatus.ACTIVE
    done = fresh.post(unsubscribe_path)
    assert done.status_code == 200
    assert subscriber(app, "reader@example.org").status == SubscriberStatus.UNSUBSCRIBED

    # Repeats are harmless.
    assert fresh.post(unsubscribe_path).status_code == 200
    assert subscriber(app, "reader@example.org").status == SubscriberStatus.UNSUBSCRIBED


def active_reader(app, email: str) -> int:
    with app.app_context():
        row = Subscriber(email=email, email_key=email.lower(), status=SubscriberStatus.ACTIVE)
        db.session.add(row)
        db.session.commit()
        return row.id


def one_click_path(app, subscriber_id: int) -> str:
    with app.app_context():
        url = unsubscribe_url(*reader_link(app, subscriber_id))
    return url.removeprefix("https://news.example.org")


def test_one_click_unsubscribe_urlencoded(app):
    subscriber_id = active_reader(app, "oneclick@example.org")
    provider = app.test_client(use_cookies=False)
    response = provider.post(
        one_click_path(app, subscriber_id),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200  # never a redirect (RFC 8058)
    assert "Set-Cookie" not in response.headers
    assert subscriber(app, "oneclick@example.org").status == SubscriberStatus.UNSUBSCRIBED


def test_one_click_unsubscribe_multipart(app):
    subscriber_id = active_reader(app, "multipart@example.org")
    provider = app.test_client(use_cookies=False)
    response = provider.post(
        one_click_path(app, subscriber_id),
        data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert subscriber(app, "multipart@example.org").status == SubscriberStatus.UNSUBSCRIBED
    # And again: still 200, still unsubscribed.
    again = provider.post(
        one_click_path(app, subscriber_id),
        data={"List-Unsubscribe": "One-Click"},
        content_type="multipart/form-data",
    )
    assert again.status_code == 200


def test_unsubscribed_reader_who_signs_up_again_must_confirm_again(app, client, worker, outbox):
    subscriber_id = active_reader(app, "returning@example.org")
    app.test_client().post(
        one_click_path(app, subscriber_id), data={"List-Unsubscribe": "One-Click"}
    )
    assert subscriber(app, "returning@example.org").status == SubscriberStatus.UNSUBSCRIBED

    signup(client, "returning@example.org")
    assert subscriber(app, "returning@example.org").status == SubscriberStatus.PENDING
    [mail] = outbox.wait_for("returning@example.org")
    assert "/confirm/" in text_body(mail)


def test_resubscribe_from_the_unsubscribe_page_sends_a_new_confirmation(
    app, client, worker, outbox
):
    subscriber_id = active_reader(app, "oops@example.org")
    path = one_click_path(app, subscriber_id)
    page = client.post(path).get_data(as_text=True)
    assert "Subscribe again" in page
    token = hidden_fields(page)["csrf_token"]
    response = client.post(
        path.replace("/unsubscribe/", "/resubscribe/"), data={"csrf_token": token}
    )
    assert response.status_code == 200
    assert subscriber(app, "oops@example.org").status == SubscriberStatus.PENDING
    outbox.wait_for("oops@example.org")


def test_pending_signup_resends_the_confirmation_at_most_once_an_hour(app, client, worker, outbox):
    signup(client, "twice@example.org")
    outbox.wait_for("twice@example.org")
    wait_until(
        lambda: subscriber(app, "twice@example.org").confirmation_sent_at is not None,
        message="the confirmation was not marked sent",
    )
    signup(client, "twice@example.org")
    signup(client, "twice@example.org")
    # The later signups queued nothing: the row says the only mail owed was sent.
    row = subscriber(app, "twice@example.org")
    assert row.confirmation_sent_at == row.confirmation_requested_at
    assert len(outbox.to("twice@example.org")) == 1


def test_confirmation_lost_with_redis_is_sent_by_the_reconciler(
    app, client, worker, outbox, redis_server
):
    from datetime import timedelta

    from sqlalchemy import update

    from mailer.delivery.reconciler import reconcile

    # A signup whose queued task never ran (as if Redis lost it): the row says a mail is owed.
    with app.app_context():
        row = Subscriber(
            email="lost@example.org",
            email_key="lost@example.org",
            status=SubscriberStatus.PENDING,
            consent_source="subscribe-page",
        )
        db.session.add(row)
        db.session.commit()
        db.session.execute(
            update(Subscriber)
            .where(Subscriber.id == row.id)
            .values(confirmation_requested_at=row.created_at - timedelta(minutes=5))
        )
        db.session.commit()
        assert reconcile()["confirmations"] == 1
    outbox.wait_for("lost@example.org")
    wait_until(
        lambda: subscriber(app, "lost@example.org").confirmation_sent_at is not None,
        message="the reconciled confirmation was not marked sent",
    )
    with app.app_context():
        assert reconcile()["confirmations"] == 0
