"""How the text of a MAILER_* variable becomes a value: each parser names the variable
when the text is wrong."""

from __future__ import annotations

import re

from limits import parse_many


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


def number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def text(_name: str, raw: str) -> str:
    return raw


def words(_name: str, raw: str) -> tuple[str, ...]:
    return tuple(raw.replace(",", " ").split())


SECTION_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def section_pairs(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`politics:Politics,world:World news`: a slug (what the API and links use) and the
    name readers see, in the order readers see them."""
    sections: list[tuple[str, str]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        slug, _, title = part.partition(":")
        slug, title = slug.strip(), title.strip() or slug.strip()
        if not SECTION_SLUG.fullmatch(slug):
            raise ConfigError(
                f"{name}: {slug!r} is not a section slug (lowercase letters, digits and "
                "hyphens, at most 40)"
            )
        if any(slug == known for known, _title in sections):
            raise ConfigError(f"{name}: the section {slug!r} is named twice")
        if len(title) > 60:
            raise ConfigError(f"{name}: the name of {slug!r} is longer than 60 characters")
        sections.append((slug, title))
    return tuple(sections)


def feed_section_pairs(_name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`politics=https://example.com/politics.rss world=https://...`: checked in
    config.load_settings against MAILER_SECTIONS and MAILER_FEEDS."""
    return tuple(
        (slug.strip(), url.strip())
        for slug, _, url in (pair.partition("=") for pair in raw.replace(",", " ").split())
    )


def limit_list(name: str, raw: str) -> str:
    """Rate limits such as `10 per minute;100 per hour`, checked now and parsed on use."""
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be limits such as '10 per minute;100 per hour', not {raw!r}"
        ) from None
    return raw
