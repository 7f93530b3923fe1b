"""The digest schedule as text: "daily 07:00" or "mon,thu 07:30" in a time zone, parsed.

Pure parsing, with no database: settings validate it at start-up, and
`scheduler.py` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
