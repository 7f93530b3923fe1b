"""Feeds in: poll RSS/Atom feeds, turn new entries into articles.

A broken or hostile feed (unreachable, slow, huge, malformed, declaring XML
entities) is recorded on its row and skipped; the other feeds go on.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
import xml.sax
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import feedparser
from flask import current_app
from sqlalchemy import select

from mailer import articles
from mailer.db import db
from mailer.errors import InvalidInput
from mailer.models import Feed, utcnow
from mailer.summaries import html_to_text

log = logging.getLogger(__name__)

USER_AGENT = "mailer-feed-poller/1.0"
# A feed seen for the first time contributes only its recent entries, not its archive.
FIRST_POLL_WINDOW = timedelta(days=2)


class FeedError(Exception):
    """Why a feed could not be used this time."""


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: not modified since the last poll
    etag: str | None
    last_modified: str | None


# Only plain HTTP(S): no file://, no ftp://, not even through a redirect.
_opener = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.HTTPHandler,
    urllib.request.HTTPSHandler,
    urllib.request.HTTPRedirectHandler,
    urllib.request.HTTPDefaultErrorHandler,
    urllib.request.HTTPErrorProcessor,
):
    _opener.add_handler(_handler())


def fetch(url: str, etag: str | None, last_modified: str | None) -> Fetched:
    settings = current_app.config["MAILER"]
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked at start-up
    deadline = time.monotonic() + settings.feed_timeout
    try:
        with _opener.open(request, timeout=settings.feed_timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > settings.feed_max_bytes:
                    raise FeedError(f"larger than {settings.feed_max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FeedError(f"took longer than {settings.feed_timeout} s")
                chunks.append(chunk)
            return Fetched(
                b"".join(chunks),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(None, etag, last_modified)
        raise FeedError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FeedError(f"unreachable: {getattr(exc, 'reason', exc)}") from None


def parse_entries(url: str, body: bytes) -> list[dict]:
    """Article payloads from a feed document; raises FeedError for non-feeds."""
    # Entity declarations have no business in a news feed and are how
    # "billion laughs" documents explode; refuse them outright.
    if b"<!ENTITY" in body:
        raise FeedError("declares XML entities; refused")
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    problem = parsed.get("bozo_exception")
    # Malformed XML is refused rather than guessed at; a mislabelled encoding is not.
    if isinstance(problem, xml.sax.SAXException):
        raise FeedError(f"malformed XML: {problem}")
    if not parsed.get("version") and not parsed.entries:
        raise FeedError("not an RSS or Atom feed")
    return [_payload(entry) for entry in parsed.entries]


def _payload(entry: feedparser.FeedParserDict) -> dict:
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    content = entry.get("content") or []
    return {
        "title": entry.get("title"),
        "url": entry.get("link"),
        "guid": entry.get("id"),
        "summary": html_to_text(entry.get("summary") or "")[: articles.LIMITS["summary"]] or None,
        "body_html": content[0].get("value") if content else None,
        "author": entry.get("author"),
        "published_at": datetime.fromtimestamp(timegm(when), UTC).isoformat() if when else None,
    }


def poll_feed(url: str) -> int:
    """Polls one feed; returns how many new articles it brought. Raises FeedError."""
    session = db.session
    with db.transaction():
        feed = session.scalar(select(Feed).where(Feed.url == url))
        if feed is None:
            feed = Feed(url=url)
            session.add(feed)
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
    for payload in payloads:
        try:
            article = articles.parse_article(payload)
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
        feed.last_error = error
        if error is None:
            feed.etag = validators.get("etag")
            feed.last_modified = validators.get("last_modified")


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
