"""Articles in: validation, sanitizing, de-duplication by URL or GUID."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import nh3
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from mailer import sections
from mailer.content import intake
from mailer.content.summaries import MAX_HTML_DEPTH, html_depth
from mailer.mail import slots
from mailer.models import Article, Frequency, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput

FIELDS = {"title", "url", "summary", "body_html", "author", "published_at", "guid", "section"}
LIMITS = {"title": 500, "url": 2000, "summary": 5000, "author": 200, "guid": 500}
MAX_BODY_HTML = 500_000

# Tags readers' mail clients render well; no scripts, forms, styles or frames.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl",
    "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "time", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "time": {"datetime"},
}


@dataclass(frozen=True)
class ArticleInput:
    title: str
    url: str
    summary: str | None = None
    body_html: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    guid: str | None = None
    section: str | None = None  # a slug of MAILER_SECTIONS; None: the front page


def sanitize_html(html: str) -> str:
    """Removes scripts, event handlers, styles and remote CSS; keeps readable markup."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


# Line breaks and tabs are text; other control characters (NUL above all) are not.
TEXT_CONTROLS = frozenset("\t\n\r")


def _text(data: dict, field: str, *, required: bool = False) -> str | None:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"'{field}' is required.")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string.")
    allowed = TEXT_CONTROLS if field == "summary" else frozenset()
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        if field == "summary":
            raise InvalidInput(f"'{field}' must not hold control characters.")
        raise InvalidInput(f"'{field}' must be a single line of text.")
    value = value.strip() if field == "summary" else " ".join(value.split())
    if len(value) > LIMITS[field]:
        raise InvalidInput(f"'{field}' can be at most {LIMITS[field]} characters long.")
    return value


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname or " " in value:
        raise InvalidInput("'url' must be an absolute http:// or https:// URL.")
    return value


def _published_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("'published_at' must be an ISO 8601 date and time.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise InvalidInput("'published_at' must be an ISO 8601 date and time.") from None


def parse_article(data: object, *, retired_ok: bool = False) -> ArticleInput:
    """Validates an API payload; unknown fields are an error, not silently dropped.

    A retired section takes no new article from the API or the console; a feed that
    MAILER_FEED_SECTIONS files under it still does (`retired_ok`): its readers kept it.
    """
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidInput(
            f"Unknown fields: {', '.join(unknown)}. Allowed: {', '.join(sorted(FIELDS))}."
        )
    body_html = data.get("body_html")
    if body_html is not None:
        if not isinstance(body_html, str):
            raise InvalidInput("'body_html' must be a string.")
        if len(body_html) > MAX_BODY_HTML:
            raise InvalidInput(f"'body_html' can be at most {MAX_BODY_HTML} characters long.")
        if "\0" in body_html:
            raise InvalidInput("'body_html' must not hold NUL characters.")
        if html_depth(body_html) > MAX_HTML_DEPTH:
            raise InvalidInput(f"'body_html' nests elements more than {MAX_HTML_DEPTH} deep.")
        body_html = sanitize_html(body_html) or None
    article = ArticleInput(
        title=_text(data, "title", required=True),  # type: ignore[arg-type]
        url=_url(_text(data, "url", required=True)),  # type: ignore[arg-type]
        summary=_text(data, "summary"),
        body_html=body_html,
        author=_text(data, "author"),
        published_at=_published_at(data.get("published_at")),
        guid=_text(data, "guid"),
        section=_section(data.get("section"), retired_ok),
    )
    _refuse_slot_text(article)
    return article


# What a digest shows of an article (a summary is made from body_html when there is none).
SHOWN_FIELDS = ("title", "url", "summary", "body_html", "author")


def _refuse_slot_text(article: ArticleInput) -> None:
    """Only mailer places a reader's own links; an article that looks as if it held one is
    refused (its HTML once sanitized, which decodes entities), whoever sent it."""
    for field in SHOWN_FIELDS:
        value = getattr(article, field)
        if value is not None and slots.looks_like_a_slot(value):
            raise InvalidInput(
                f"'{field}' must not hold text of the form __MAILER_...__: "
                "mailer puts each reader's own links there."
            )


def _section(value: object, retired_ok: bool) -> str | None:
    if value is None or value == "":
        return None
    slugs = [slug for slug, _name in sections.offered()]
    if retired_ok and isinstance(value, str) and value in sections.labels():
        return value
    if not isinstance(value, str) or value not in slugs:
        shown = repr(value)[:60] if isinstance(value, str) else "that value"
        known = ", ".join(slugs) if slugs else "none are set up (MAILER_SECTIONS)"
        raise InvalidInput(f"'section' must be one of the sections: {known}; not {shown}.")
    return value


def _existing(article: ArticleInput) -> Article | None:
    conditions = [Article.url == article.url]
    if article.guid:
        conditions.append(Article.guid == article.guid)
    return db.session.scalar(select(Article).where(or_(*conditions)).order_by(Article.id).limit(1))


def accept_article(article: ArticleInput, *, source: str) -> tuple[Article, bool]:
    """Stores an article for the next digest. Returns (article, created).

    The same article arriving twice at once (a feed polled by two beats, an API retry)
    is one row: the second insert does nothing and finds the first, with no error
    that would end the caller's unit of work.
    """
    session = db.session
    with db.transaction():
        existing = _existing(article)
        if existing is not None:
            return existing, False
        article_id = session.scalar(
            db.insert(Article)
            .values(
                title=article.title,
                url=article.url,
                guid=article.guid,
                section=article.section,
                summary=article.summary,
                body_html=article.body_html,
                author=article.author,
                published_at=article.published_at,
                source=source,
            )
            .on_conflict_do_nothing()
            .returning(Article.id)
        )
        if article_id is None:
            existing = _existing(article)
            if existing is None:  # a conflict is with a row that exists: never here
                raise RuntimeError("an article's insert conflicted with no row")
            return existing, False
        row = session.get_one(Article, article_id)
    intake.request_intake()  # queued once the row is committed, visible to the task
    return row, True


# Not sent in a digest and not removed by an editor.
UNSENT = (Article.digest_id.is_(None), Article.removed_at.is_(None))
# What a digest takes: unsent articles the intake has taken in.
WAITING = (*UNSENT, Article.ready_at.is_not(None))


# A weekly digest takes the articles that came in during the last seven days.
WEEKLY_WINDOW = timedelta(days=7)


def digest_column(frequency: Frequency) -> InstrumentedAttribute[int | None]:
    """The column naming the digest of this frequency an article went out in."""
    return Article.digest_id if frequency is Frequency.DAILY else Article.weekly_digest_id


def give_back(digest_id: int, frequency: Frequency) -> int:
    """The articles of a digest that went to nobody (cancelled before any mail was tried)
    wait again for the next digest of its frequency. Returns how many."""
    column = digest_column(frequency)
    return db.change(update(Article).where(column == digest_id).values({column.key: None}))


def waiting_for(frequency: Frequency) -> tuple[ColumnElement[bool], ...]:
    """What a digest of this frequency takes: articles taken in, not in one of its kind yet.

    Each article goes out in exactly one daily digest, and in the weekly digest of the
    week it came in: a weekly digest is the week's articles, never a backlog (articles
    from before the first weekly reader, or from before an upgrade, are not owed to it).
    """
    return (*unsent_for(frequency), Article.ready_at.is_not(None))


def unsent_for(frequency: Frequency) -> tuple[ColumnElement[bool], ...]:
    """Not yet in a digest of this frequency (taken in or not), nor removed."""
    unsent = (digest_column(frequency).is_(None), Article.removed_at.is_(None))
    if frequency is Frequency.WEEKLY:
        return (*unsent, Article.created_at >= utcnow() - WEEKLY_WINDOW)
    return unsent


def in_digest(digest_id: int) -> ColumnElement[bool]:
    """The articles of one digest, daily or weekly (digest ids are never shared)."""
    return or_(Article.digest_id == digest_id, Article.weekly_digest_id == digest_id)


def waiting_articles(
    limit: int | None = None, frequency: Frequency = Frequency.DAILY
) -> list[Article]:
    """Articles waiting for the next digest of this frequency (taken in or about to be),
    oldest first."""
    query = select(Article).where(*unsent_for(frequency)).order_by(Article.id).limit(limit)
    return list(db.session.scalars(query))


def digest_order(chosen: list[Article]) -> list[Article]:
    """The order a digest shows articles in: as an editor placed them, then newest first."""

    def key(article: Article) -> tuple:
        when = (article.published_at or article.created_at).timestamp()
        if article.position is not None:
            return (0, article.position, 0.0, 0)
        return (1, 0, -when, -article.id)

    return sorted(chosen, key=key)


def waiting_in_digest_order(limit: int | None = None) -> list[Article]:
    """The articles the next digest takes (the oldest first, up to the limit), in its order."""
    return digest_order(waiting_articles(limit))


def recently_sent(limit: int = 50) -> list[Article]:
    """Articles already sent, newest first, each with the digest it went out in."""
    return list(
        db.session.scalars(
            select(Article)
            .where(Article.digest_id.is_not(None))
            .order_by(Article.id.desc())
            .limit(limit)
        )
    )


def remove_article(article_id: int) -> bool:
    """Takes an article out of the next digest; one already sent stays where it was."""
    with db.transaction():
        removed = db.change(
            update(Article).where(Article.id == article_id, *UNSENT).values(removed_at=utcnow())
        )
    return bool(removed)
