"""Feeds in: poll RSS/Atom feeds, turn new entries into articles.

A broken or hostile feed (unreachable, slow, huge, malformed, declaring XML
entities) is recorded on its row and skipped; the other feeds go on.
"""

from __future__ import annotations

import logging
import xml.sax
import xml.sax.handler
from calendar import timegm
from datetime import UTC, datetime, timedelta

import defusedxml
import defusedxml.sax
import feedparser
from flask import current_app
from sqlalchemy import select

from mailer.content import articles
from mailer.content.feed_http import FeedError, Fetched
from mailer.content.feed_http import fetch as fetch_feed
from mailer.content.summaries import html_to_text
from mailer.mail import slots
from mailer.models import Feed, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput

log = logging.getLogger(__name__)

# A feed seen for the first time contributes only its recent entries, not its archive.
FIRST_POLL_WINDOW = timedelta(days=2)

__all__ = ["FeedError", "Fetched", "fetch", "parse_entries", "poll_feed", "poll_feeds"]


def fetch(url: str, etag: str | None, last_modified: str | None) -> Fetched:
    """GETs a feed within MAILER_FEED_TIMEOUT and MAILER_FEED_MAX_BYTES. Raises FeedError."""
    settings = current_app.config["MAILER"]
    return fetch_feed(
        url, etag, last_modified, timeout=settings.feed_timeout, max_bytes=settings.feed_max_bytes
    )


def parse_entries(url: str, body: bytes) -> list[dict]:
    """Article payloads from a feed document; raises FeedError for non-feeds."""
    _refuse_entities(body)
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    problem = parsed.get("bozo_exception")
    # Malformed XML is refused rather than guessed at; a mislabelled encoding is not.
    if isinstance(problem, xml.sax.SAXException):
        raise FeedError(f"malformed XML: {problem}")
    if not parsed.get("version") and not parsed.entries:
        raise FeedError("not an RSS or Atom feed")
    return [_payload(entry) for entry in parsed.entries]


def _refuse_entities(body: bytes) -> None:
    """Entity declarations have no business in a news feed and are how "billion laughs"
    documents explode: defusedxml's parser stops at the first one, in whatever encoding
    the document is in, before feedparser sees it. A document that is not XML at all is
    left to feedparser, which says what it is."""
    try:
        defusedxml.sax.parseString(body, xml.sax.handler.ContentHandler())
    except defusedxml.DefusedXmlException:
        raise FeedError("declares XML entities; refused") from None
    except xml.sax.SAXException:
        pass


def _payload(entry: feedparser.FeedParserDict) -> dict:
    """An entry as an article payload. Text that looks like a reader's slot is dropped: a
    feed's author sent no token, and the rest of the entry is still news."""
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    content = entry.get("content") or []
    payload = {
        "title": entry.get("title"),
        "url": entry.get("link"),
        "guid": entry.get("id"),
        "summary": html_to_text(entry.get("summary") or "")[: articles.LIMITS["summary"]] or None,
        "body_html": content[0].get("value") if content else None,
        "author": entry.get("author"),
        "published_at": datetime.fromtimestamp(timegm(when), UTC).isoformat() if when else None,
    }
    return {k: slots.without_slot_text(v) if isinstance(v, str) else v for k, v in payload.items()}


def poll_feed(url: str) -> int:
    """Polls one feed; returns how many new articles it brought. Raises FeedError."""
    with db.transaction():
        # Two polls at once (a second beat) both come here: one row, no IntegrityError.
        db.session.execute(db.insert(Feed).values(url=url).on_conflict_do_nothing())
        feed = db.session.scalars(select(Feed).where(Feed.url == url)).one()
        first_poll = feed.last_polled_at is None
        etag, last_modified = feed.etag, feed.last_modified
    try:
        fetched = fetch(url, etag, last_modified)
        payloads = parse_entries(url, fetched.body) if fetched.body is not None else []
    except FeedError as exc:
        _record(url, error=str(exc))
        raise
    created = 0
    oldest = utcnow() - FIRST_POLL_WINDOW
    section = {u: slug for slug, u in current_app.config["MAILER"].feed_sections}.get(url)
    for payload in payloads:
        try:
            article = articles.parse_article({**payload, "section": section}, retired_ok=True)
        except InvalidInput as exc:
            log.info("feed %s: entry skipped: %s", url, exc.message)
            continue
        if first_poll and (article.published_at is None or article.published_at < oldest):
            continue
        _row, is_new = articles.accept_article(article, source=f"feed:{url}"[:200])
        created += is_new
    _record(url, etag=fetched.etag, last_modified=fetched.last_modified)
    return created


def _record(url: str, *, error: str | None = None, **validators: str | None) -> None:
    with db.transaction():
        feed = db.session.scalars(select(Feed).where(Feed.url == url)).one()
        feed.last_polled_at = utcnow()
        # What a broken server sent can hold NUL and control bytes; PostgreSQL takes no NUL.
        feed.last_error = None if error is None else _printable(error)[:1000]
        if error is None:
            feed.etag = validators.get("etag")
            feed.last_modified = validators.get("last_modified")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def poll_feeds() -> dict[str, int | str]:
    """Polls every configured feed; one broken feed does not stop the others."""
    results: dict[str, int | str] = {}
    for url in current_app.config["MAILER"].feeds:
        try:
            results[url] = poll_feed(url)
        except FeedError as exc:
            log.warning("feed %s skipped: %s", url, exc)
            results[url] = f"error: {exc}"
    return results
