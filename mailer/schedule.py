"""The digest schedule: e.g. "daily 07:00" or "mon,thu 07:30" in a configured time zone.

Beat asks every minute; a digest goes out at most once per scheduled day (the
period is a unique key on the digest), and only if there is something new.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app

from mailer.db import db
from mailer.digests import AlreadySending, NothingToSend, create_digest
from mailer.errors import InvalidInput
from mailer.models import ConsoleSetting, utcnow

log = logging.getLogger(__name__)

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALIASES = {"daily": set(range(7)), "weekdays": set(range(5)), "weekends": {5, 6}}
# Beat or the workers may be down at the hour; a digest still goes within this window.
CATCH_UP = timedelta(hours=1)


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    days: frozenset[int]  # 0 = Monday
    at: time
    zone: ZoneInfo

    def due_period(self, now: datetime) -> str | None:
        """The period ("2026-11-25") whose digest is due at `now`, if any."""
        local = now.astimezone(self.zone)
        start = datetime.combine(local.date(), self.at, tzinfo=self.zone)
        if local.weekday() in self.days and start <= local < start + CATCH_UP:
            return local.date().isoformat()
        return None


def parse_schedule(text: str, zone_name: str) -> Schedule | None:
    """ "" means no schedule; otherwise "<days> HH:MM" (days: daily, weekdays, mon,thu...)."""
    if not text.strip():
        return None
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {zone_name!r}") from None
    parts = text.lower().split()
    if len(parts) != 2:
        raise ScheduleError(f"{text!r} is not like 'daily 07:00' or 'mon,thu 07:30'")
    days_text, at_text = parts
    try:
        at = time.fromisoformat(at_text)
    except ValueError:
        raise ScheduleError(f"{at_text!r} is not a time like 07:00") from None
    if days_text in ALIASES:
        days = ALIASES[days_text]
    else:
        names = days_text.split(",")
        if not all(name in DAYS for name in names):
            raise ScheduleError(f"{days_text!r}: use daily, weekdays, weekends or mon,tue,...")
        days = {DAYS.index(name) for name in names}
    return Schedule(frozenset(days), at, zone)


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
    """Makes the scheduled digest if one is due and there is something new. Returns its id."""
    schedule = parse_schedule(*current_schedule())
    period = schedule.due_period(now or utcnow()) if schedule else None
    if period is None:
        return None
    try:
        return create_digest(trigger="schedule", period=period)
    except (NothingToSend, AlreadySending) as reason:
        log.info("scheduled digest for %s not sent: %s", period, reason.message)
        return None
