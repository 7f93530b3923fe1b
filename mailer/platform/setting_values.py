"""The kinds of value a MAILER_* variable holds, as pydantic types: each takes the variable's
text (or a value already of its type, from a test's override) and says what is wrong in
words that follow the variable's name."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many
from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message, one line, names the variable."""


def _flag(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _one_line(value: str) -> str:
    # Most of these end up in mail headers or page text: a line break would be a header
    # injection, and no relay, URL or name holds one.
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be one line, without control characters")
    return value


def _word_list(value: Any) -> Any:
    return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _http_url(value: str) -> str:
    if value and not (value.startswith(("http://", "https://")) and urlsplit(value).hostname):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _redis_url(value: str) -> str:
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis:// URL")
    return value


def _limits(value: str) -> str:
    """Rate limits such as `10 per minute;100 per hour`, checked now and parsed on use."""
    try:
        parse_many(value)
    except ValueError:
        raise ValueError(
            f"must be limits such as '10 per minute;100 per hour', not {value!r}"
        ) from None
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone such as 'Europe/Berlin'") from None
    return value


LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def _domain(value: str) -> str:
    if value and not all(LABEL.fullmatch(label) for label in value.split(".")):
        raise ValueError(f"{value!r} is not a domain name such as news.example.com")
    return value


def _dns_label(value: str) -> str:
    if value and not LABEL.fullmatch(value):
        raise ValueError(f"must be a DNS label such as 'mail2026', not {value!r}")
    return value


def _no_spaces(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValueError("must not hold spaces")
    return value


def _bind(value: str) -> str:
    """gunicorn's --bind: HOST:PORT ([::1]:PORT for IPv6) or unix:PATH."""
    if value.startswith("unix:") and len(value) > len("unix:"):
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT or unix:PATH, not {value!r}")
    return value


SECTION_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def _section_pairs(value: Any) -> Any:
    """`politics:Politics,world:World news`: a slug (what the API and links use) and the
    name readers see, in the order readers see them."""
    if not isinstance(value, str):
        return value
    sections: list[tuple[str, str]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        slug, _, title = part.partition(":")
        slug, title = slug.strip(), title.strip() or slug.strip()
        if not SECTION_SLUG.fullmatch(slug):
            raise ValueError(
                f"{slug!r} is not a section slug (lowercase letters, digits and hyphens, "
                "at most 40)"
            )
        if any(slug == known for known, _title in sections):
            raise ValueError(f"the section {slug!r} is named twice")
        if len(title) > 60:
            raise ValueError(f"the name of {slug!r} is longer than 60 characters")
        sections.append((slug, title))
    return tuple(sections)


def _feed_section_pairs(value: Any) -> Any:
    """`politics=https://example.com/politics.rss world=https://...`: checked against
    MAILER_SECTIONS and MAILER_FEEDS by the model."""
    if not isinstance(value, str):
        return value
    pairs = []
    for pair in value.replace(",", " ").split():
        slug, equals, url = pair.partition("=")
        if not equals:
            raise ValueError(f"{pair!r} is not slug=URL")
        pairs.append((slug.strip(), url.strip()))
    return tuple(pairs)


# NoDecode: pydantic-settings would read a tuple's text as JSON; these have a form of their own.
Flag = Annotated[bool, BeforeValidator(_flag)]
Text = Annotated[str, AfterValidator(_one_line)]
Word = Annotated[str, AfterValidator(_one_line), AfterValidator(_no_spaces)]
HttpUrl = Annotated[str, AfterValidator(_one_line), AfterValidator(_http_url)]
RedisUrl = Annotated[str, AfterValidator(_one_line), AfterValidator(_redis_url)]
Limits = Annotated[str, AfterValidator(_one_line), AfterValidator(_limits)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Domain = Annotated[str, AfterValidator(_one_line), AfterValidator(_domain)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Bind = Annotated[str, AfterValidator(_one_line), AfterValidator(_bind)]
Keys = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
Urls = Annotated[tuple[HttpUrl, ...], NoDecode, BeforeValidator(_word_list)]
Words = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_word_list)]
SectionPairs = Annotated[tuple[tuple[str, str], ...], NoDecode, BeforeValidator(_section_pairs)]
FeedSectionPairs = Annotated[
    tuple[tuple[str, str], ...], NoDecode, BeforeValidator(_feed_section_pairs)
]
