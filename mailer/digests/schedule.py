"""Running the digest schedule: beat asks every minute, a due digest is made once.

A digest goes out at most once per scheduled day (the period is a unique key on
the digest), and only if there is something new. An editor's schedule, stored
in SQL, overrides the environment's.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from flask import current_app

from mailer.digests.runs import AlreadySending, NoReaders, NothingToSend, create_digest
from mailer.models import ConsoleSetting, Frequency, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput
from mailer.platform.schedules import Schedule, ScheduleError, parse_schedule

log = logging.getLogger(__name__)

SCHEDULE_KEY = "digest_schedule"  # value: JSON {"schedule": "daily 07:00", "timezone": "UTC"}


def current_schedule() -> tuple[str, str]:
    """(schedule, time zone): an editor's choice in the console, else the environment's."""
    stored = db.session.get(ConsoleSetting, SCHEDULE_KEY)
    if stored is not None:
        value = json.loads(stored.value)
        return value["schedule"], value["timezone"]
    settings = current_app.config["MAILER"]
    return settings.digest_schedule, settings.timezone


def set_schedule(schedule: str, timezone: str, *, changed_by: str) -> None:
    """Validates and stores the schedule ("" turns it off)."""
    try:
        parse_schedule(schedule, timezone)
    except ScheduleError as exc:
        raise InvalidInput(f"That schedule does not work: {exc}.") from None
    value = json.dumps({"schedule": " ".join(schedule.lower().split()), "timezone": timezone})
    with db.transaction():
        db.session.merge(
            ConsoleSetting(
                key=SCHEDULE_KEY, value=value, changed_by=changed_by, changed_at=utcnow()
            )
        )


def run_schedule(now: datetime | None = None) -> int | None:
    """Makes the scheduled digests that are due, if there is something new for them.
    Returns the daily digest's id, else the weekly one's."""
    now = now or utcnow()
    daily = _run(parse_schedule(*current_schedule()), Frequency.DAILY, now)
    settings = current_app.config["MAILER"]
    weekly = _run(
        parse_schedule(settings.weekly_schedule, settings.timezone), Frequency.WEEKLY, now
    )
    return daily or weekly


def _run(schedule: Schedule | None, frequency: Frequency, now: datetime) -> int | None:
    day = schedule.due_period(now) if schedule else None
    if day is None:
        return None
    # Periods are unique: "2026-11-30" for the daily digest, "weekly:2026-11-30" for the other.
    period = day if frequency is Frequency.DAILY else f"{frequency}:{day}"
    try:
        return create_digest(trigger="schedule", period=period, frequency=frequency)
    except (NothingToSend, NoReaders, AlreadySending) as reason:
        log.info("scheduled digest for %s not sent: %s", period, reason.message)
        return None
