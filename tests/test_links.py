"""A link reaches its own reader and nobody else, whatever becomes of ids."""

from __future__ import annotations

from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import insert, select

from mailer.mail.tokens import Purpose, make_confirm_token, make_unsubscribe_token
from mailer.models import Subscriber, SubscriberStatus
from mailer.platform.db import db
from mailer.subscribers.records import erase
from tests.conftest import SECRET
from tests.helpers import hidden_fields, reader_link


def add(app, email: str, status: SubscriberStatus, **columns: object) -> int:
    with app.app_context():
        subscriber_id = db.session.execute(
            insert(Subscriber)
            .values(email=email, email_key=email, status=status, **columns)
            .returning(Subscriber.id)
        ).scalar_one()
        db.session.commit()
        return subscriber_id


def status_of(app, subscriber_id: int) -> SubscriberStatus:
    with app.app_context():
        return db.session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber_id))


def test_ids_are_never_given_again_after_an_erase(app):
    first = add(app, "first@example.org", SubscriberStatus.ACTIVE)
    with app.app_context():
        erase(first)
    second = add(app, "second@example.org", SubscriberStatus.ACTIVE)
    assert second > first


def test_an_erased_readers_links_do_nothing_to_whoever_has_their_id_now(app, client):
    """Even if an id came back (a restored backup, a reset sequence), the key tells them apart."""
    old = add(app, "old@example.org", SubscriberStatus.PENDING)
    old_id, old_key = reader_link(app, old)
    with app.app_context():
        confirm = make_confirm_token(old_id, old_key)
        unsubscribe = make_unsubscribe_token(old_id, old_key)
        erase(old)
    # A new reader who got the very same id.
    add(app, "new@example.org", SubscriberStatus.PENDING, id=old_id)
    page = client.get(f"/confirm/{confirm}")
    assert page.status_code == 404
    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    assert client.post(f"/confirm/{confirm}", data=fields).status_code == 404
    assert status_of(app, old_id) == SubscriberStatus.PENDING  # no double opt-in bypass
    assert client.post(f"/unsubscribe/{unsubscribe}").status_code == 404
    assert status_of(app, old_id) == SubscriberStatus.PENDING


def test_links_mailed_before_keys_work_for_their_readers_only(app, client):
    before = add(app, "before@example.org", SubscriberStatus.ACTIVE, legacy_links=True)
    after = add(app, "after@example.org", SubscriberStatus.ACTIVE)
    legacy = URLSafeSerializer(SECRET, salt=Purpose.UNSUBSCRIBE.value)
    assert client.post(f"/unsubscribe/{legacy.dumps(after)}").status_code == 404
    assert status_of(app, after) == SubscriberStatus.ACTIVE
    assert client.post(f"/unsubscribe/{legacy.dumps(before)}").status_code == 200
    assert status_of(app, before) == SubscriberStatus.UNSUBSCRIBED
    timed = URLSafeTimedSerializer(SECRET, salt=Purpose.CONFIRM.value)
    assert client.get(f"/confirm/{timed.dumps(after)}").status_code == 404


def test_a_link_with_someone_elses_key_is_refused(app, client):
    mine = add(app, "mine@example.org", SubscriberStatus.ACTIVE)
    theirs = add(app, "theirs@example.org", SubscriberStatus.ACTIVE)
    with app.app_context():
        forged = make_unsubscribe_token(theirs, reader_link(app, mine)[1])
    assert client.post(f"/unsubscribe/{forged}").status_code == 404
    assert status_of(app, theirs) == SubscriberStatus.ACTIVE


def test_token_pages_are_never_cached(app, client):
    from mailer.mail.tokens import make_preferences_token

    with app.app_context():
        reader = Subscriber(email="c@example.org", email_key="c@example.org", status="pending")
        db.session.add(reader)
        db.session.commit()
        ids = (reader.id, reader.link_key)
        confirm, unsubscribe = make_confirm_token(*ids), make_unsubscribe_token(*ids)
        preferences = make_preferences_token(*ids)
    csrf = hidden_fields(client.get(f"/confirm/{confirm}").get_data(as_text=True))["csrf_token"]
    answers = [
        client.get(f"/confirm/{confirm}"),
        client.post(f"/confirm/{confirm}", data={"csrf_token": csrf}),
        client.get(f"/unsubscribe/{unsubscribe}"),
        client.get(f"/preferences/{preferences}"),
        client.post(f"/unsubscribe/{unsubscribe}", data={"List-Unsubscribe": "One-Click"}),
        client.post(f"/resubscribe/{unsubscribe}", data={"csrf_token": csrf}),
        client.get("/confirm/not-a-token"),  # the error page names no reader, but is a token URL
    ]
    for response in answers:
        assert response.headers.get("Cache-Control") == "no-store", response.request.path
    assert "no-store" not in client.get("/subscribe").headers.get("Cache-Control", "")
