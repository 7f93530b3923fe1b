"""Sections and readers' choices: which sections a reader takes, and how often.

A reader's choice is stored on the subscriber as a *sections key*: None for every
section (those added later too), otherwise the chosen slugs sorted and comma-joined.
Readers with the same key get the same mail, rendered once (`DigestSegment`).
Front-page articles (no section) go to every reader, whatever they chose.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import ColumnElement, func, literal, select

from mailer.models import (
    ALL_SECTIONS_KEY,
    Article,
    Frequency,
    Section,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput, NotFound
from mailer.platform.setting_values import SECTION_SLUG


@dataclass(frozen=True)
class Choice:
    """What a reader asked for: their sections key and their frequency."""

    sections: str | None = None  # None: every section
    frequency: Frequency = Frequency.DAILY


# Read on every signup: kept this long per process, so an editor's change shows within it.
CACHE_SECONDS = 5.0
_cache: dict[tuple[int, tuple], tuple[float, tuple[tuple[str, str], ...]]] = {}


def offered() -> tuple[tuple[str, str], ...]:
    """(slug, name) of the sections readers can choose now, in the order they see them."""
    key = (id(current_app), current_app.config["MAILER"].sections)
    cached = _cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    found = tuple((row.slug, row.name) for row in every_section() if row.retired_at is None)
    _cache[key] = (time.monotonic() + CACHE_SECONDS, found)
    return found


def forget() -> None:
    """Drops what offered() kept: after a change here, and between tests."""
    _cache.clear()


def every_section() -> list[Section]:
    """Every section, retired ones too, in order; MAILER_SECTIONS' slugs not stored yet
    follow (unsaved: reads never write)."""
    rows = list(db.session.scalars(select(Section).order_by(Section.position, Section.slug)))
    return rows + _not_stored(rows)


def _not_stored(rows: list[Section]) -> list[Section]:
    known = {row.slug for row in rows}
    start = max((row.position for row in rows), default=0) + 1
    missing = [(s, n) for s, n in current_app.config["MAILER"].sections if s not in known]
    return [
        Section(slug=slug, name=name, position=start + offset, retired_at=None)
        for offset, (slug, name) in enumerate(missing)
    ]


def store_configured() -> int:
    """Stores MAILER_SECTIONS' slugs the table does not hold yet (an editor's rename or
    retirement of the others is kept). Run by `mailer db upgrade` and before every change
    here. Returns how many it stored."""
    with db.transaction():
        rows = list(db.session.scalars(select(Section)))
        missing = _not_stored(rows)
        for section in missing:
            db.session.execute(
                db.insert(Section)
                .values(
                    slug=section.slug,
                    name=section.name,
                    position=section.position,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
    forget()
    return len(missing)


def names() -> dict[str, str]:
    return dict(offered())


def sections_key(chosen: Iterable[str]) -> str | None:
    """The key of a set of slugs: None when it holds every section offered."""
    picked = sorted(set(chosen))
    if set(picked) >= set(names()):
        return None
    return ",".join(picked)


MAX_KEY_LENGTH = 1000  # Subscriber.sections


@dataclass(frozen=True)
class Form:
    """What a form showed and what a reader had, for reading their ticked boxes."""

    shown: frozenset[str] | None = None  # the boxes the form showed; None: not known
    kept: frozenset[str] = frozenset()  # retired sections the reader keeps in their choice


def parse_sections(raw: object, form: Form = Form(), *, keep_retired: bool = False) -> str | None:
    """Slugs a reader sent (a list of strings) as a key; InvalidInput names what is wrong.

    A retired section's slug is known: a form pasted on a site before it was retired still
    works. It is dropped from a new choice (`keep_retired` keeps it: an import), and a
    reader's own retired sections (`form.kept`) stay in theirs. Every box a form showed
    ticked means every section, those added since the form was made too.
    """
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise InvalidInput("'sections' must be a list of section names.")
    offered_now = names()
    if not offered_now:
        raise InvalidInput("This newsletter has no sections to choose from.")
    # Retired slugs are read from the table only when a slug is not offered (an import
    # reads every row's sections: one query a row would triple its time).
    known = offered_now if all(s in offered_now for s in raw) else labels()
    unknown = sorted({s for s in raw if s not in known})
    if unknown:
        listed = ", ".join(repr(s[:40]) for s in unknown[:5])
        raise InvalidInput(f"Unknown section {listed}; the sections are: {', '.join(offered_now)}.")
    ticked = set(raw)
    if form.shown and ticked >= form.shown:
        return None
    chosen = ticked if keep_retired else {s for s in ticked if s in offered_now}
    if not chosen:
        raise InvalidInput("Please choose at least one section.")
    key = sections_key(chosen | form.kept)
    if key is not None and len(key) > MAX_KEY_LENGTH:
        raise InvalidInput("That is more sections than a reader can choose.")
    return key


def form_of(shown: object, current: str | None = None) -> Form:
    """The Form of a POST: `sections_shown` lists the boxes shown (an old form sent "1"),
    and `current` is the reader's key now, whose retired sections they keep."""
    listed = None
    if isinstance(shown, str) and shown not in {"", "1"}:
        listed = frozenset(s for s in shown.split(",")[:100] if s)
    return Form(listed, _retired_in(current))


def _retired_in(key: str | None) -> frozenset[str]:
    """The sections of a reader's choice that are not offered any more."""
    if key is None:
        return frozenset()
    return frozenset(s for s in key.split(",") if s and s not in names())


def parse_frequency(raw: object) -> Frequency:
    if raw is None or raw == "":
        return Frequency.DAILY
    try:
        return Frequency(raw if isinstance(raw, str) else "")
    except ValueError:
        raise InvalidInput("'frequency' must be daily or weekly.") from None


def parse_choice(sections: object | None, frequency: object | None, form: Form = Form()) -> Choice:
    """A reader's choice from a form or JSON; sections None means they were not offered."""
    key = None if sections is None else parse_sections(sections, form)
    return Choice(key, parse_frequency(frequency))


def kept_names(key: str | None) -> list[str]:
    """The names of retired sections a reader's choice keeps."""
    kept = _retired_in(key)
    return [row.name for row in every_section() if row.slug in kept]


def chosen_slugs(key: str | None) -> list[str]:
    """The slugs a key stands for, in the order readers see the sections."""
    if key is None:
        return [slug for slug, _name in offered()]
    picked = set(key.split(",")) if key else set()
    return [slug for slug, _name in offered() if slug in picked]


def labels() -> dict[str, str]:
    """Every section's name by slug, retired ones marked so."""
    return {
        row.slug: row.name + (" (retired)" if row.retired_at else "") for row in every_section()
    }


def describe(key: str | None, known: dict[str, str] | None = None) -> str:
    """The key as a reader or an editor reads it: "Every section" or "Politics, Sport".
    `known`: labels(), when describing many keys."""
    if key is None or key == ALL_SECTIONS_KEY:
        return "Every section"
    known = labels() if known is None else known
    picked = [slug for slug in key.split(",") if slug]
    # In the order readers see the sections; a slug nobody knows any more, last.
    ordered = [slug for slug in known if slug in picked] + [s for s in picked if s not in known]
    shown = [known.get(slug, f"{slug} (retired)") for slug in ordered]
    return ", ".join(shown) or "Front page only"


def articles_for(chosen: Sequence[Article], key: str) -> list[Article]:
    """The articles of a digest that readers with this key get: their sections' and the
    front page's. A slug no longer offered still matches its own old articles."""
    if key == ALL_SECTIONS_KEY:
        return list(chosen)
    picked = set(key.split(","))
    return [a for a in chosen if a.section is None or a.section in picked]


def naming(slug: str) -> ColumnElement[bool]:
    """Readers whose choice names this section (not those who take every section)."""
    return (literal(",") + Subscriber.sections + literal(",")).contains(f",{slug},")


def reader_counts() -> dict[str, object]:
    """Active readers per section offered (those who take every section included) and per
    frequency, for the dashboard."""
    active = Subscriber.status == SubscriberStatus.ACTIVE
    per_frequency = dict(
        db.session.execute(
            select(Subscriber.frequency, func.count()).where(active).group_by(Subscriber.frequency)
        ).all()
    )
    per_section = {
        slug: db.count(
            select(func.count())
            .select_from(Subscriber)
            .where(active, Subscriber.sections.is_(None) | naming(slug))
        )
        for slug, _name in offered()
    }
    return {
        "sections": [(slug, name, per_section[slug]) for slug, name in offered()],
        "frequencies": {f.value: per_frequency.get(f, 0) for f in Frequency},
    }


# --- an editor's changes --------------------------------------------------------


@dataclass(frozen=True)
class SectionRow:
    slug: str
    name: str
    retired: bool
    readers: int  # active readers whose choice names it (those of every section not counted)
    only_this: int  # of them, readers for whom it is the only section


def overview() -> list[SectionRow]:
    active = (
        select(func.count())
        .select_from(Subscriber)
        .where(Subscriber.status == SubscriberStatus.ACTIVE)
    )
    return [
        SectionRow(
            row.slug,
            row.name,
            row.retired_at is not None,
            db.count(active.where(naming(row.slug))),
            db.count(active.where(Subscriber.sections == row.slug)),
        )
        for row in every_section()
    ]


def _clean_name(raw: object) -> str:
    name = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not name or len(name) > 60 or any(not c.isprintable() for c in name):
        raise InvalidInput("A section's name is one line of 1 to 60 characters.")
    return name


def add_section(slug: object, name: object) -> str:
    """A new section, offered from now on; readers of every section get it at once."""
    if not isinstance(slug, str) or not SECTION_SLUG.fullmatch(slug):
        raise InvalidInput(
            "A section's short name (for the API and links) is lowercase letters, digits and "
            "hyphens, at most 40."
        )
    store_configured()
    rows = every_section()
    if any(row.slug == slug for row in rows):
        raise InvalidInput(f"There is already a section '{slug}'.")
    with db.transaction():
        db.session.add(
            Section(
                slug=slug,
                name=_clean_name(name),
                position=max((row.position for row in rows), default=0) + 1,
            )
        )
    forget()
    return slug


def _change(slug: str, **values: object) -> None:
    store_configured()  # MAILER_SECTIONS' slugs are rows before an editor changes one
    with db.transaction():
        section = db.session.get(Section, slug)
        if section is None:
            raise NotFound(f"There is no section '{slug[:40]}'.")
        for field, value in values.items():
            setattr(section, field, value)
    forget()


def rename_section(slug: str, name: object) -> None:
    _change(slug, name=_clean_name(name))


def retire_section(slug: str) -> None:
    """Offered to nobody and no new article filed there; readers keep it in their choice
    (it may come back), so nobody's choice is changed behind their back."""
    _change(slug, retired_at=utcnow())


def restore_section(slug: str) -> None:
    _change(slug, retired_at=None)
