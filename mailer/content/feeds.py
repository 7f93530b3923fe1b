"""Feeds in: poll RSS/Atom feeds, turn new entries into articles.

A broken or hostile feed (unreachable, slow, huge, malformed, declaring XML
entities) is recorded on its row and skipped; the other feeds go on.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
import xml.sax
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import feedparser
from flask import current_app
from sqlalchemy import select

from mailer.content import articles
from mailer.content.summaries import html_to_text
from mailer.mail import slots
from mailer.models import Feed, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput

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


MAX_REDIRECTS = 5
READ_CHUNK = 65536


def fetch(url: str, etag: str | None, last_modified: str | None) -> Fetched:
    """GETs a feed within one deadline for everything (connect, headers, body, redirects).

    Raises FeedError for anything that is not a feed document we may read.
    """
    settings = current_app.config["MAILER"]
    deadline = time.monotonic() + settings.feed_timeout
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            status, location, response_headers, body = _get(url, headers, deadline, origin)
            if status in {301, 302, 303, 307, 308} and location:
                url = urljoin(url, location)
                continue
            if status == 304:
                return Fetched(None, etag, last_modified)
            if status >= 400 or status < 200:
                raise FeedError(f"HTTP {status}")
            return Fetched(
                body, response_headers.get("ETag"), response_headers.get("Last-Modified")
            )
    except (OSError, http.client.HTTPException, ValueError, UnicodeError) as exc:
        # Refused, reset, timed out, a broken status line or a short body, a URL that
        # does not parse: all of them mean the feed cannot be read this time.
        if time.monotonic() >= deadline:  # the watchdog cut it: say so, not what broke
            raise FeedError(f"took longer than {settings.feed_timeout} s") from None
        raise FeedError(f"unreachable: {type(exc).__name__}: {exc}") from None
    raise FeedError(f"more than {MAX_REDIRECTS} redirects")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise FeedError(f"not an http:// or https:// URL: {url[:200]!r}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _get(
    url: str, headers: dict[str, str], deadline: float, feed_origin: tuple[str, str, int]
) -> tuple[int, str | None, http.client.HTTPMessage, bytes]:
    """One request; the connection is cut at the deadline, whatever the server does."""
    scheme, host, port = _origin(url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FeedError(f"took longer than {current_app.config['MAILER'].feed_timeout} s")
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=remaining, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=remaining)
    watchdog = threading.Timer(remaining, _cut, args=(connection,))
    watchdog.start()
    try:
        connection.connect()
        _check_peer(connection, (scheme, host, port) == feed_origin)
        parts = urlsplit(url)
        connection.request(
            "GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers
        )
        response = connection.getresponse()
        body = _read_body(response, deadline) if response.status == 200 else b""
        return response.status, response.getheader("Location"), response.headers, body
    finally:
        watchdog.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection) -> None:
    """The deadline: a blocked read returns at once when its socket is shut down."""
    if connection.sock is not None:
        with contextlib.suppress(OSError):  # already closed
            connection.sock.shutdown(socket.SHUT_RDWR)


def _check_peer(connection: http.client.HTTPConnection, same_origin: bool) -> None:
    """A redirect may lead anywhere public, never to another service on a private network.

    The configured feed's own origin may be private (the site next door); checked on
    the address actually connected to, so DNS cannot change the answer in between.
    """
    if same_origin or connection.sock is None:
        return
    address = ipaddress.ip_address(connection.sock.getpeername()[0].split("%")[0])
    if not address.is_global:
        raise FeedError(f"redirected to a private address ({address}); refused")


def _read_body(response: http.client.HTTPResponse, deadline: float) -> bytes:
    limit = current_app.config["MAILER"].feed_max_bytes
    chunks, size = [], 0
    # read1 returns what has arrived: a server that drips bytes cannot outlast the deadline.
    while chunk := response.read1(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise FeedError(f"larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise FeedError(f"took longer than {current_app.config['MAILER'].feed_timeout} s")
        chunks.append(chunk)
    if response.length:  # read1 ends quietly where read() would raise IncompleteRead
        raise FeedError(f"the server hung up {response.length} bytes before the end")
    return b"".join(chunks)


# An entity declaration in any of the encodings an XML parser detects by itself.
ENTITY_DECLARATIONS = tuple(
    "<!ENTITY".encode(encoding)
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)


def parse_entries(url: str, body: bytes) -> list[dict]:
    """Article payloads from a feed document; raises FeedError for non-feeds."""
    # Entity declarations have no business in a news feed and are how
    # "billion laughs" documents explode; refuse them outright, in any encoding.
    if any(needle in body for needle in ENTITY_DECLARATIONS):
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
