"""The signup form cannot be used to mail strangers: the hourly budget of confirmations,
pending readers expiring, no name in the confirmation, and no mail to complainers or
dead addresses (issue 18, items 4 and 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from mailer.bounces import processing as bounces
from mailer.delivery import confirmations
from mailer.delivery.reconciler import reconcile
from mailer.models import BounceKind, Subscriber, SubscriberStatus, utcnow
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.settings import ConfigError, load_settings
from mailer.subscribers import confirmations as asking
from mailer.subscribers import records
from tests.conftest import SECRET
from tests.helpers import csrf_token, html_body, link_path, queued_tasks, text_body

LURE = "Your mailbox is full - restore it at https://evil.example/restore"


def post_signup(client, email: str, name: str = "") -> tuple[int, bytes]:
    response = client.post(
        "/subscribe",
        json={"email": email, "name": name},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    return response.status_code, response.get_data()


def reader(app, email: str) -> Subscriber | None:
    with app.app_context():
        return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def add_reader(app, email: str, status: SubscriberStatus, **fields) -> int:
    with app.app_context():
        row = Subscriber(email=email, email_key=email.lower(), status=status, **fields)
        db.session.add(row)
        db.session.commit()
        return row.id


def move_clock(monkeypatch, by: timedelta) -> None:
    """The budget's and the confirmations' clocks, as if `by` had passed."""
    later = utcnow() + by
    for module in (asking, confirmations):
        monkeypatch.setattr(module, "utcnow", lambda: later)


@pytest.fixture
def budget_of_two(isolated):
    """A quiet app (no worker listens on its broker) whose budget is two mails an hour."""
    import redis as redis_lib

    app, _env = isolated(extra={"MAILER_CONFIRMATIONS_PER_HOUR": "2"})
    broker = redis_lib.Redis.from_url(app.config["MAILER"].redis_url)
    for key in [b"celery", *broker.scan_iter("mailer:*")]:
        broker.delete(key)
    broker.close()
    return app, app.test_client()


# --- item 4: the budget, expiry, the name -------------------------------------


def test_the_confirmation_mail_never_shows_the_name_typed_in(quiet, outbox):
    app, client = quiet
    assert post_signup(client, "stranger@example.org", LURE)[0] == 202
    assert reader(app, "stranger@example.org").name == LURE  # kept for the reader's record
    with app.app_context():
        assert confirmations.send_recent_confirmations() == 1
    [mail] = outbox.to("stranger@example.org")
    shown = [text_body(mail), html_body(mail), *(str(v) for v in mail.values())]
    for part in shown:
        assert "mailbox is full" not in part and "evil.example" not in part
    assert text_body(mail).startswith("Hello,")


def test_over_the_hourly_budget_signups_are_kept_and_their_confirmations_wait(
    budget_of_two, outbox, monkeypatch
):
    app, client = budget_of_two
    addresses = [f"rush{n}@example.org" for n in range(5)]
    for address in addresses:
        assert post_signup(client, address)[0] == 202
    with app.app_context():
        confirmations.send_recent_confirmations()
    assert len(outbox.envelopes) == 2
    with app.app_context():
        assert asking.budget_left() == 0
        assert asking.budget_reached_at() is not None
    # Nothing lost: every signup is recorded, the three others still owed.
    assert all(reader(app, a).status == SubscriberStatus.PENDING for a in addresses)
    owed = [a for a in addresses if reader(app, a).confirmation_sent_at is None]
    assert len(owed) == 3
    with app.app_context():
        # The reconciler queues nothing the budget would only give back.
        move_clock(monkeypatch, timedelta(minutes=10))
        assert reconcile()["confirmations"] == 0
        # An hour later, two places are free: two are queued, and a third waits again.
        move_clock(monkeypatch, timedelta(minutes=61))
        assert reconcile()["confirmations"] == 2
        outcomes = [confirmations.send_confirmation(reader(app, a).id) for a in owed]
    assert outcomes == ["sent", "sent", confirmations.OVER_BUDGET]
    assert len(outbox.envelopes) == 4
    assert reader(app, owed[2]).confirmation_claimed_at is None  # free for a later task
    assert queued_tasks(app).count(jobs.SEND_CONFIRMATION) == 2


def test_the_dashboard_says_when_the_budget_was_reached_in_the_last_hour(
    app, console, settings_override, monkeypatch
):
    settings_override(confirmations_per_hour=1)
    banner = "The hourly budget of 1 confirmation mails"
    assert banner not in console.get("/editor/").get_data(as_text=True)
    with app.app_context():
        assert asking.take_budget_place()
        assert not asking.take_budget_place()
    assert banner in console.get("/editor/").get_data(as_text=True)
    move_clock(monkeypatch, timedelta(minutes=61))
    assert banner not in console.get("/editor/").get_data(as_text=True)


def test_unconfirmed_signups_expire_and_their_link_says_so(quiet, outbox):
    app, client = quiet
    former = add_reader(
        app,
        "former@example.org",
        SubscriberStatus.UNSUBSCRIBED,
        confirmed_at=utcnow() - timedelta(days=400),
        unsubscribed_at=utcnow() - timedelta(days=300),
    )
    for address in ("stranger@example.org", "former@example.org", "fresh@example.org"):
        post_signup(client, address)
    with app.app_context():
        assert confirmations.send_recent_confirmations() == 3
        # Fifteen days on for two of them (MAILER_PENDING_EXPIRE_DAYS is 14).
        db.session.execute(
            update(Subscriber)
            .where(Subscriber.email != "fresh@example.org")
            .values(confirmation_requested_at=utcnow() - timedelta(days=15))
        )
        db.session.commit()
        assert reconcile()["pending_expired"] == 2
    assert reader(app, "stranger@example.org") is None  # a stranger's address is not kept
    assert reader(app, "former@example.org").status == SubscriberStatus.UNSUBSCRIBED
    assert reader(app, "fresh@example.org").status == SubscriberStatus.PENDING
    with app.app_context():
        assert db.session.get(Subscriber, former) is not None  # on record: no import revives it
    [mail] = outbox.to("stranger@example.org")
    page = client.get(link_path(text_body(mail), "/confirm/"))
    assert page.status_code == 410
    assert "not confirmed within 14 days, so it expired" in page.get_data(as_text=True)


def test_pending_readers_cannot_expire_before_their_link_does(environment):
    with pytest.raises(ConfigError, match="MAILER_PENDING_EXPIRE_DAYS"):
        load_settings(
            environ={**environment, "MAILER_SECRET_KEY": SECRET, "MAILER_PENDING_EXPIRE_DAYS": "3"}
        )


# --- item 5: complainers, erased and bounced addresses ------------------------


def complain(app, subscriber_id: int) -> None:
    with app.app_context():
        bounces.record(
            bounces.Target(subscriber_id),
            bounces.Report(BounceKind.COMPLAINT, None, "complaint (abuse)"),
        )


def test_a_complainer_gets_no_confirmation_from_anyones_signup(quiet, outbox):
    app, client = quiet
    complainer = add_reader(app, "angry@example.org", SubscriberStatus.ACTIVE)
    complain(app, complainer)
    answers = {post_signup(client, a) for a in ("angry@example.org", "newcomer@example.org")}
    assert len(answers) == 1  # the same answer: nothing revealed
    with app.app_context():
        confirmations.send_recent_confirmations()
        reconcile()
    assert outbox.to("angry@example.org") == []
    assert len(outbox.to("newcomer@example.org")) == 1
    assert reader(app, "angry@example.org").status == SubscriberStatus.UNSUBSCRIBED


def test_an_erased_address_is_neither_stored_nor_mailed_on_signup(quiet, outbox):
    app, client = quiet
    erased = add_reader(app, "erased@example.org", SubscriberStatus.ACTIVE)
    with app.app_context():
        records.erase(erased)
    assert post_signup(client, "erased@example.org") == post_signup(client, "other@example.org")
    with app.app_context():
        confirmations.send_recent_confirmations()
    assert reader(app, "erased@example.org") is None
    assert outbox.to("erased@example.org") == []


def test_a_recently_bounced_address_gets_no_confirmation_one_bounced_long_ago_does(quiet, outbox):
    app, client = quiet
    two_hours_ago = utcnow() - timedelta(hours=2)
    add_reader(
        app,
        "dead@example.org",
        SubscriberStatus.BOUNCED,
        bounced_at=two_hours_ago,
        confirmation_requested_at=two_hours_ago,  # past the hour a resend waits
    )
    long_ago = utcnow() - timedelta(days=31)  # MAILER_BOUNCE_QUARANTINE_DAYS is 30
    add_reader(
        app,
        "revived@example.org",
        SubscriberStatus.BOUNCED,
        bounced_at=long_ago,
        confirmation_requested_at=long_ago,
    )
    assert post_signup(client, "dead@example.org") == post_signup(client, "revived@example.org")
    with app.app_context():
        confirmations.send_recent_confirmations()
    assert outbox.to("dead@example.org") == []
    assert reader(app, "dead@example.org").status == SubscriberStatus.BOUNCED
    assert len(outbox.to("revived@example.org")) == 1


def test_an_editor_lets_a_complainer_sign_up_again_and_they_still_confirm(app, console, quiet):
    _quiet_app, client = quiet
    complainer = add_reader(app, "sorry@example.org", SubscriberStatus.ACTIVE)
    complain(app, complainer)
    page = console.get(f"/editor/subscribers/{complainer}").get_data(as_text=True)
    assert "Allow signups again" in page
    lifted = console.post(
        "/editor/subscribers/suppression/lift",
        data={
            "csrf_token": csrf_token(console, "/editor/subscribers"),
            "email": "sorry@example.org",
        },
        follow_redirects=True,
    )
    assert "may sign up again" in lifted.get_data(as_text=True)
    row = reader(app, "sorry@example.org")
    assert row.status == SubscriberStatus.UNSUBSCRIBED and row.complained_at is None
    post_signup(client, "sorry@example.org")
    row = reader(app, "sorry@example.org")
    assert row.status == SubscriberStatus.PENDING  # a confirmation is owed, as for anyone
    assert row.confirmation_requested_at is not None and row.confirmed_at is None
