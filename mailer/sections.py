"""Sections and readers' choices: which sections a reader takes, and how often.

A reader's choice is stored on the subscriber as a *sections key*: None for every
section (those added later too), otherwise the chosen slugs sorted and comma-joined.
Readers with the same key get the same mail, rendered once (`DigestSegment`).
Front-page articles (no section) go to every reader, whatever they chose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, literal, select

from mailer.db import db
from mailer.errors import InvalidInput
from mailer.models import ALL_SECTIONS_KEY, Article, Frequency, Subscriber, SubscriberStatus


@dataclass(frozen=True)
class Choice:
    """What a reader asked for: their sections key and their frequency."""

    sections: str | None = None  # None: every section
    frequency: Frequency = Frequency.DAILY


def offered() -> tuple[tuple[str, str], ...]:
    """(slug, name) of the sections readers can choose, in the order they see them."""
    return current_app.config["MAILER"].sections


def names() -> dict[str, str]:
    return dict(offered())


def sections_key(chosen: Iterable[str]) -> str | None:
    """The key of a set of slugs: None when it holds every section offered."""
    picked = sorted(set(chosen))
    if set(picked) >= set(names()):
        return None
    return ",".join(picked)


def parse_sections(raw: object) -> str | None:
    """Slugs a reader sent (a list of strings) as a key; InvalidInput names what is wrong."""
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise InvalidInput("'sections' must be a list of section names.")
    known = names()
    if not known:
        raise InvalidInput("This newsletter has no sections to choose from.")
    unknown = sorted({s for s in raw if s not in known})
    if unknown:
        shown = ", ".join(repr(s[:40]) for s in unknown[:5])
        raise InvalidInput(f"Unknown section {shown}; the sections are: {', '.join(known)}.")
    if not raw:
        raise InvalidInput("Please choose at least one section.")
    return sections_key(raw)


def parse_frequency(raw: object) -> Frequency:
    if raw is None or raw == "":
        return Frequency.DAILY
    try:
        return Frequency(raw if isinstance(raw, str) else "")
    except ValueError:
        raise InvalidInput("'frequency' must be daily or weekly.") from None


def parse_choice(sections: object | None, frequency: object | None) -> Choice:
    """A reader's choice from a form or JSON; sections None means they were not offered."""
    key = None if sections is None else parse_sections(sections)
    return Choice(key, parse_frequency(frequency))


def chosen_slugs(key: str | None) -> list[str]:
    """The slugs a key stands for, in the order readers see the sections."""
    if key is None:
        return [slug for slug, _name in offered()]
    picked = set(key.split(",")) if key else set()
    return [slug for slug, _name in offered() if slug in picked]


def describe(key: str | None) -> str:
    """The key as a reader or an editor reads it: "Every section" or "Politics, Sport"."""
    if key is None or key == ALL_SECTIONS_KEY:
        return "Every section"
    known = names()
    shown = [known.get(slug, f"{slug} (retired)") for slug in key.split(",") if slug]
    return ", ".join(shown) or "Front page only"


def articles_for(chosen: Sequence[Article], key: str) -> list[Article]:
    """The articles of a digest that readers with this key get: their sections' and the
    front page's. A slug no longer offered still matches its own old articles."""
    if key == ALL_SECTIONS_KEY:
        return list(chosen)
    picked = set(key.split(","))
    return [a for a in chosen if a.section is None or a.section in picked]


def reader_counts() -> dict[str, object]:
    """Active readers per section offered (those who take every section included) and per
    frequency, for the dashboard."""
    active = Subscriber.status == SubscriberStatus.ACTIVE
    per_frequency = dict(
        db.session.execute(
            select(Subscriber.frequency, func.count()).where(active).group_by(Subscriber.frequency)
        ).all()
    )
    padded = literal(",") + Subscriber.sections + literal(",")
    per_section = {
        slug: db.count(
            select(func.count())
            .select_from(Subscriber)
            .where(active, Subscriber.sections.is_(None) | padded.contains(f",{slug},"))
        )
        for slug, _name in offered()
    }
    return {
        "sections": [(slug, name, per_section[slug]) for slug, name in offered()],
        "frequencies": {f.value: per_frequency.get(f, 0) for f in Frequency},
    }


def stored_key(key: str | None) -> str:
    """Subscriber.sections as a segment's key (None: ALL_SECTIONS_KEY)."""
    return ALL_SECTIONS_KEY if key is None else key
