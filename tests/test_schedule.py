"""Scheduled digests: at most one per period, none without new articles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mailer.digests.schedule import run_schedule
from mailer.models import Article, Digest, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db
from mailer.platform.schedules import ScheduleError, parse_schedule
from mailer.platform.settings import ConfigError, load_settings
from tests.helpers import add_choosing_readers, wait_until


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_schedules_are_read_in_the_configured_time_zone():
    schedule = parse_schedule("daily 07:00", "Europe/Berlin")
    assert schedule.due_period(utc(2026, 11, 25, 6, 0)) == "2026-11-25"  # 07:00 in Berlin
    assert schedule.due_period(utc(2026, 11, 25, 5, 59)) is None
    assert schedule.due_period(utc(2026, 11, 25, 7, 1)) is None  # past the catch-up hour
    # Summer time: 07:00 in Berlin is 05:00 UTC.
    assert schedule.due_period(utc(2026, 7, 1, 5, 30)) == "2026-07-01"


def test_schedules_on_some_days_only():
    schedule = parse_schedule("mon,thu 07:30", "UTC")
    assert schedule.due_period(utc(2026, 11, 23, 7, 45)) == "2026-11-23"  # a Monday
    assert schedule.due_period(utc(2026, 11, 24, 7, 45)) is None  # a Tuesday
    assert parse_schedule("weekdays 06:00", "UTC").due_period(utc(2026, 11, 28, 6, 0)) is None
    assert parse_schedule("", "UTC") is None


@pytest.mark.parametrize(
    "text", ["07:00", "daily", "daily 7am", "someday 07:00", "mon,xyz 07:00", "daily 25:00"]
)
def test_a_malformed_schedule_stops_the_start_with_a_clear_message(text):
    with pytest.raises(ScheduleError):
        parse_schedule(text, "UTC")
    env = {"MAILER_SECRET_KEY": "a-long-enough-secret-key", "MAILER_DIGEST_SCHEDULE": text}
    with pytest.raises(ConfigError, match="MAILER_DIGEST_SCHEDULE"):
        load_settings(environ=env)


def test_an_unknown_time_zone_stops_the_start():
    env = {
        "MAILER_SECRET_KEY": "a-long-enough-secret-key",
        "MAILER_DIGEST_SCHEDULE": "daily 07:00",
        "MAILER_TIMEZONE": "Mars/Olympus",
    }
    with pytest.raises(ConfigError, match="time zone"):
        load_settings(environ=env)


def digest_status(app, digest_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Digest.status).where(Digest.id == digest_id))


def digests_made(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Digest))


def test_beat_firing_twice_makes_one_digest_and_nothing_new_makes_none(
    app, worker, settings_override
):
    settings_override(digest_schedule="daily 07:00", timezone="Europe/Berlin")
    at_seven = utc(2026, 11, 25, 6, 5)
    with app.app_context():
        assert run_schedule(at_seven) is None  # no articles: no digest
        db.session.add(
            Subscriber(
                email="s@example.org", email_key="s@example.org", status=SubscriberStatus.ACTIVE
            )
        )
        db.session.add(
            Article(
                title="Scheduled",
                url="https://news.example.org/s",
                source="test",
                ready_at=utcnow(),
            )
        )
        db.session.commit()
        assert run_schedule(utc(2026, 11, 25, 5, 0)) is None  # too early
        first = run_schedule(at_seven)
        assert first is not None
        assert db.session.scalar(select(Digest.period).where(Digest.id == first)) == "2026-11-25"
    wait_until(lambda: digest_status(app, first) == "sent", message="the digest did not finish")
    with app.app_context():
        db.session.add(
            Article(
                title="Later",
                url="https://news.example.org/later",
                source="test",
                ready_at=utcnow(),
            )
        )
        db.session.commit()
        assert run_schedule(utc(2026, 11, 25, 6, 6)) is None  # the same day, beat again
    assert digests_made(app) == 1
    with app.app_context():
        assert run_schedule(utc(2026, 11, 26, 6, 0)) is not None  # the next day
    assert digests_made(app) == 2


def test_editors_change_the_schedule_in_the_console(app, console):
    from mailer.digests.schedule import current_schedule
    from tests.helpers import hidden_fields

    client = console
    with app.app_context():
        assert current_schedule() == ("", "UTC")
    token = hidden_fields(client.get("/editor/schedule").get_data(as_text=True))["csrf_token"]
    saved = client.post(
        "/editor/schedule",
        data={"csrf_token": token, "schedule": "Weekdays  06:30", "timezone": "Europe/Berlin"},
        follow_redirects=True,
    )
    assert "Schedule saved." in saved.get_data(as_text=True)
    assert "weekdays 06:30" in saved.get_data(as_text=True)
    bad = client.post(
        "/editor/schedule",
        data={"csrf_token": token, "schedule": "whenever", "timezone": "Europe/Berlin"},
        follow_redirects=True,
    )
    assert "does not work" in bad.get_data(as_text=True)
    with app.app_context():
        assert current_schedule() == ("weekdays 06:30", "Europe/Berlin")
        schedule = parse_schedule(*current_schedule())
        assert schedule.due_period(utc(2026, 11, 23, 5, 45)) == "2026-11-23"  # Monday, Berlin
    client.post("/editor/schedule", data={"csrf_token": token, "off": "1"})
    with app.app_context():
        assert current_schedule()[0] == ""
        assert run_schedule(utc(2026, 11, 23, 5, 45)) is None


def test_the_weekly_schedule_makes_the_weekly_digest_once_on_its_day(
    app, settings_override, monkeypatch
):
    from mailer.models import Frequency
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)  # rows are not the point here
    settings_override(weekly_schedule="mon 07:00", timezone="UTC")
    add_choosing_readers(app, {"w@example.org": (None, Frequency.WEEKLY)})
    with app.app_context():
        db.session.add(
            Article(title="Week", url="https://news.example.org/w", source="t", ready_at=utcnow())
        )
        db.session.commit()
        assert run_schedule(utc(2026, 11, 29, 7, 5)) is None  # a Sunday
        weekly = run_schedule(utc(2026, 11, 30, 7, 5))  # Monday
        assert weekly is not None
        made = db.session.get_one(Digest, weekly)
        assert (made.frequency, made.period) == (Frequency.WEEKLY, "weekly:2026-11-30")
        assert run_schedule(utc(2026, 11, 30, 7, 30)) is None  # beat again: one weekly digest
    assert digests_made(app) == 1
