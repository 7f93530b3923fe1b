"""Signing up: what readers, bots and scrapers see, and what gets stored."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer import create_app
from mailer.mail.tokens import (
    ReaderLink,
    make_confirm_token,
    make_unsubscribe_token,
    read_unsubscribe_token,
)
from mailer.models import Subscriber, SubscriberStatus
from mailer.platform.db import db
from mailer.platform.settings import load_settings
from tests.conftest import SECRET, free_port
from tests.helpers import csrf_token, hidden_fields, queued_tasks, signup

VARYING_HEADERS = {"Date", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"}


def count_subscribers(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Subscriber))


def add_subscriber(app, email: str, status: SubscriberStatus) -> None:
    with app.app_context():
        db.session.add(Subscriber(email=email, email_key=email.lower(), status=status))
        db.session.commit()


def comparable(response) -> tuple:
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k not in VARYING_HEADERS))
    return response.status_code, headers, response.get_data()


def test_the_signup_page_is_self_contained_and_accessible(client):
    response = client.get("/subscribe")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<label for="email">' in page
    assert 'name="viewport"' in page
    assert 'lang="en"' in page
    # Nothing loaded from another site.
    assert "<script" not in page
    assert "http://" not in page and "https://" not in page
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_new_and_existing_addresses_get_identical_answers(app, client):
    add_subscriber(app, "active@example.org", SubscriberStatus.ACTIVE)
    add_subscriber(app, "pending@example.org", SubscriberStatus.PENDING)
    add_subscriber(app, "gone@example.org", SubscriberStatus.UNSUBSCRIBED)
    answers = {
        address: comparable(signup(client, address))
        for address in (
            "new@example.org",
            "active@example.org",
            "pending@example.org",
            "gone@example.org",
        )
    }
    assert len(set(answers.values())) == 1, answers
    assert answers["new@example.org"][0] == 200

    json_answers = {
        address: comparable(
            client.post(
                "/subscribe", json={"email": address}, headers={"X-CSRFToken": csrf_token(client)}
            )
        )
        for address in ("other-new@example.org", "active@example.org")
    }
    assert len(set(json_answers.values())) == 1, json_answers
    assert json_answers["active@example.org"][0] == 202


def test_json_signup_stores_a_pending_reader(app, client):
    response = client.post(
        "/subscribe",
        json={"email": "Json.Reader@Example.ORG", "name": "  Jo   Reader "},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert response.status_code == 202
    assert response.get_json()["status"] == "ok"
    with app.app_context():
        row = db.session.scalar(select(Subscriber))
    assert row.email == "Json.Reader@example.org"  # domain lowercased, local part kept
    assert row.email_key == "json.reader@example.org"
    assert row.name == "Jo Reader"
    assert row.status == SubscriberStatus.PENDING


def test_the_same_address_in_another_case_is_one_reader(app, client):
    signup(client, "Case@example.org")
    signup(client, "case@EXAMPLE.org")
    assert count_subscribers(app) == 1


def test_a_filled_honeypot_gets_the_normal_page_and_stores_nothing(app, client):
    response = signup(client, "bot@example.org", website="https://spam.example")
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)
    assert count_subscribers(app) == 0


def test_a_form_sent_faster_than_a_person_types_asks_to_press_again(app, client, settings_override):
    """An autofilled form sent at once is a person too: never told "check your inbox" falsely."""
    settings_override(signup_min_seconds=30)
    response = signup(client, "quick@example.org", name="Quick")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Check your inbox" not in page
    assert "press Subscribe again" in page
    assert 'value="quick@example.org"' in page and 'value="Quick"' in page
    assert count_subscribers(app) == 0
    settings_override(signup_min_seconds=0)  # the second press, a moment later
    again = client.post(
        "/subscribe",
        data={**hidden_fields(page), "email": "quick@example.org", "name": "Quick", "website": ""},
    )
    assert "Check your inbox" in again.get_data(as_text=True)
    assert count_subscribers(app) == 1


def test_a_form_without_its_time_stamp_is_ignored(app, client):
    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    del fields["form_token"]
    response = client.post("/subscribe", data={**fields, "email": "nostamp@example.org"})
    assert response.status_code == 200
    assert count_subscribers(app) == 0


def test_signups_are_rate_limited_per_address(app, client, settings_override):
    settings_override(signup_rate_limit_address="2 per hour")
    assert signup(client, "target@example.org").status_code == 200
    assert signup(client, "TARGET@example.org").status_code == 200
    blocked = signup(client, "target@example.org")
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    # Other addresses from the same visitor are still welcome.
    assert signup(client, "someone-else@example.org").status_code == 200


def test_signups_are_rate_limited_per_ip(app, client, settings_override):
    settings_override(signup_rate_limit_ip="3 per minute")
    for n in range(3):
        assert signup(client, f"reader{n}@example.org").status_code == 200
    blocked = signup(client, "reader9@example.org")
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers
    assert count_subscribers(app) == 3


def test_a_new_minute_does_not_open_the_gate_again(app, client, settings_override, monkeypatch):
    from mailer.web import rate_limits

    settings_override(signup_rate_limit_ip="3 per minute")
    import time

    minute = (int(time.time()) // 60 + 1) * 60  # the next window's start (keys expire by it)
    clock = {"now": minute + 59.0}
    monkeypatch.setattr(rate_limits, "clock", lambda: clock["now"])
    for n in range(3):
        assert signup(client, f"edge{n}@example.org").status_code == 200
    clock["now"] = minute + 61.0  # two seconds later, in the next fixed window
    blocked = signup(client, "edge9@example.org")
    assert blocked.status_code == 429
    # The previous minute weighs less as it slides out: half a minute on, room again.
    clock["now"] = minute + 60 + 40.0
    assert signup(client, "edge10@example.org").status_code == 200
    assert count_subscribers(app) == 4


def test_tokens_signed_with_an_older_key_still_verify(app, settings_override):
    with app.app_context():
        old_confirm = make_confirm_token(7, "key7")
        old_unsubscribe = make_unsubscribe_token(7, "key7")
        settings_override(secret_keys=("a-brand-new-secret-key-0001", SECRET))
        assert read_unsubscribe_token(old_unsubscribe) == ReaderLink(7, "key7")
        new_unsubscribe = make_unsubscribe_token(7, "key7")
        assert new_unsubscribe != old_unsubscribe  # signed with the newest key
        from mailer.mail.tokens import read_confirm_token

        assert read_confirm_token(old_confirm) == ReaderLink(7, "key7")


def test_signup_is_kept_when_the_queues_redis_is_unreachable(environment, tmp_path):
    """The broker down (the limiter's Redis up): the reader still gets the page, the row
    is stored, the mail is owed. (The limiter's own Redis down: tests/test_rate_limits.py.)"""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limiter = environment["MAILER_REDIS_URL"]
    app = create_app(
        load_settings(
            environ={
                **environment,
                "MAILER_REDIS_URL": dead,
                "MAILER_RATE_LIMIT_REDIS_URL": limiter,
            }
        )
    )
    client = app.test_client()
    try:
        response = signup(client, "while-down@example.org")
        assert response.status_code == 200
        with app.app_context():
            row = db.session.scalar(
                select(Subscriber).where(Subscriber.email_key == "while-down@example.org")
            )
            assert row.status == SubscriberStatus.PENDING
            assert row.confirmation_requested_at is not None
            assert row.confirmation_sent_at is None
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.get_json()["redis"].startswith("error")
    finally:
        app.extensions["mailer.platform.db"]["engine"].dispose()


def test_healthz_answers_when_database_and_redis_do(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_the_fast_unsubscribe_token_is_itsdangerous_own(app, settings_override):
    from itsdangerous import URLSafeSerializer

    from mailer.mail.tokens import Purpose

    for keys in ((SECRET,), ("a-brand-new-secret-key-0001", SECRET)):
        settings_override(secret_keys=keys)
        with app.app_context():
            token = make_unsubscribe_token(4711, "key-of-reader-4711")
            reference = URLSafeSerializer(
                list(reversed(keys)), salt=Purpose.UNSUBSCRIBE.value
            ).dumps([4711, "key-of-reader-4711"])
            assert token == reference
            assert read_unsubscribe_token(token) == ReaderLink(4711, "key-of-reader-4711")


def test_a_rush_of_signups_queues_one_drain_that_confirms_each_reader_once(quiet, outbox):
    from mailer.delivery import confirmations
    from mailer.platform import jobs

    app, client = quiet
    token = csrf_token(client)
    for n in range(12):
        response = client.post(
            "/subscribe", json={"email": f"rush{n}@example.org"}, headers={"X-CSRFToken": token}
        )
        assert response.status_code == 202
    # One drain for the whole rush, not a task per reader.
    assert queued_tasks(app) == [jobs.SEND_CONFIRMATIONS]
    with app.app_context():
        assert confirmations.send_recent_confirmations() == 12
        assert confirmations.send_recent_confirmations() == 0  # nothing is sent twice
    recipients = sorted(rcpt for _sender, rcpts in outbox.envelopes for rcpt in rcpts)
    assert recipients == sorted(f"rush{n}@example.org" for n in range(12))
    # The drain cleared its flag first, so the next signup queues the next drain.
    client.post("/subscribe", json={"email": "late@example.org"}, headers={"X-CSRFToken": token})
    assert queued_tasks(app) == [jobs.SEND_CONFIRMATIONS, jobs.SEND_CONFIRMATIONS]


def test_the_drain_hands_a_temporary_refusal_to_its_own_retrying_task(quiet, outbox):
    from mailer.delivery import confirmations
    from mailer.platform import jobs

    app, client = quiet
    token = csrf_token(client)
    for address in ("busy@example.org", "fine@example.org"):
        client.post("/subscribe", json={"email": address}, headers={"X-CSRFToken": token})
    outbox.refuse("busy@example.org", "451 4.7.1 Greylisted, try again later")
    with app.app_context():
        assert confirmations.send_recent_confirmations() == 2
        busy = db.session.scalar(select(Subscriber).where(Subscriber.email == "busy@example.org"))
        assert busy.confirmation_sent_at is None and busy.confirmation_claimed_at is None
    assert [rcpts for _sender, rcpts in outbox.envelopes] == [["fine@example.org"]]
    assert queued_tasks(app).count(jobs.SEND_CONFIRMATION) == 1
