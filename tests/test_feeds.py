"""Feeds in: served by a local HTTP server, good ones become articles, bad ones are skipped."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from mailer.content.feeds import poll_feeds
from mailer.models import Article, Feed, utcnow
from mailer.platform.db import db
from tests.conftest import free_port


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Example News</title><link>https://news.example.org/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(n: int, *, age: timedelta = timedelta(hours=1), link: str | None = None) -> str:
    published = format_datetime(utcnow() - age)
    link = link or f"https://news.example.org/feed/{n}"
    return (
        f"<item><title>Feed story {n} — Çavuşoğlu</title><link>{link}</link>"
        f"<guid>urn:story:{n}</guid><pubDate>{published}</pubDate>"
        f"<description>&lt;p&gt;Summary &lt;b&gt;{n}&lt;/b&gt;"
        "&lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;</description></item>"
    )


ATOM = (
    '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    "<title>Atom News</title><id>urn:atom</id><updated>{now}</updated>"
    '<entry><title>Atom story</title><link href="https://news.example.org/atom/1"/>'
    "<id>urn:atom:1</id><updated>{now}</updated><author><name>Ana</name></author>"
    '<content type="html">&lt;p onclick="x()"&gt;Atom body&lt;/p&gt;</content></entry></feed>'
)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<rss><channel><item><title>&lol3;</title><link>https://x.example/1</link></item>"
    b"</channel></rss>"
)


class FeedServer:
    """Serves canned responses by path; `delay` paths answer slowly."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        self.redirects: dict[str, str] = {}  # path -> Location
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
                status, body, delay = server.routes.get(self.path, (404, b"", 0.0))
                if self.headers.get("If-None-Match") == '"v1"':
                    status, body = 304, b""
                self.send_response(status)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", '"v1"')
                self.end_headers()
                for start in range(0, len(body), 4096):
                    if delay:
                        time.sleep(delay)  # a slow server, on purpose
                    self.wfile.write(body[start : start + 4096])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.close()


def articles_from(app, url: str) -> list[Article]:
    with app.app_context():
        return list(db.session.scalars(select(Article).where(Article.source == f"feed:{url}")))


def test_new_feed_entries_become_articles_once(app, feed_server, settings_override):
    url = feed_server.url + "/rss"
    feed_server.routes["/rss"] = (
        200,
        rss(item(1), item(2), item(3, age=timedelta(days=30))),
        0.0,
    )
    settings_override(feeds=(url,))
    with app.app_context():
        assert poll_feeds() == {url: 2}  # the month-old entry is archive, not news
    stored = articles_from(app, url)
    assert sorted(a.title for a in stored) == [
        "Feed story 1 — Çavuşoğlu",
        "Feed story 2 — Çavuşoğlu",
    ]
    assert {a.guid for a in stored} == {"urn:story:1", "urn:story:2"}
    assert all("script" not in (a.summary or "") for a in stored)
    assert stored[0].summary.startswith("Summary")

    # The second poll is conditional and brings nothing new.
    with app.app_context():
        assert poll_feeds() == {url: 0}
    assert feed_server.requests[-1][1].get("If-None-Match") == '"v1"'
    assert len(articles_from(app, url)) == 2


def test_an_atom_feed_is_read_and_its_html_sanitized(app, feed_server, settings_override):
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    feed_server.routes["/atom"] = (200, ATOM.format(now=now).encode(), 0.0)
    url = feed_server.url + "/atom"
    settings_override(feeds=(url,))
    with app.app_context():
        assert poll_feeds() == {url: 1}
    [article] = articles_from(app, url)
    assert article.author == "Ana"
    assert article.body_html == "<p>Atom body</p>"


def test_broken_and_hostile_feeds_are_skipped_without_harming_the_others(
    app, feed_server, settings_override
):
    good = feed_server.url + "/good"
    feed_server.routes.update(
        {
            "/good": (200, rss(item(10)), 0.0),
            "/malformed": (200, b"<rss><channel><item><title>oops</channel>", 0.0),
            "/html": (200, b"<html><body>Not a feed</body></html>", 0.0),
            "/huge": (200, rss(*(item(n) for n in range(200))), 0.0),
            "/slow": (200, rss(item(20)) + b" " * 16_000, 0.6),
            "/laughs": (200, BILLION_LAUGHS, 0.0),
            "/error": (500, b"boom", 0.0),
            "/badlinks": (200, rss(item(30, link="javascript:alert(1)")), 0.0),
        }
    )
    broken = [
        feed_server.url + p for p in ("/malformed", "/html", "/huge", "/slow", "/laughs", "/error")
    ]
    refused = f"http://127.0.0.1:{free_port()}/closed"
    settings_override(
        feeds=(*broken, refused, feed_server.url + "/badlinks", good),
        feed_max_bytes=20_000,
        feed_timeout=1,
    )
    with app.app_context():
        results = poll_feeds()
        errors = dict(db.session.execute(select(Feed.url, Feed.last_error)).all())
        total = db.session.scalar(select(func.count()).select_from(Article))
    assert results[good] == 1
    assert results[feed_server.url + "/badlinks"] == 0
    for url in [*broken, refused]:
        assert str(results[url]).startswith("error:"), (url, results[url])
        assert errors[url]
    assert "larger than" in errors[feed_server.url + "/huge"]
    assert (
        "longer than" in errors[feed_server.url + "/slow"]
        or "timed out" in errors[feed_server.url + "/slow"]
    )
    assert "entities" in errors[feed_server.url + "/laughs"]
    assert "HTTP 500" in errors[feed_server.url + "/error"]
    assert errors[good] is None
    assert total == 1


class RawServer:
    """Answers every connection with the same bytes, then hangs up: a broken HTTP server."""

    def __init__(self, answer: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed"
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()


class DripServer(RawServer):
    """Sends a valid response one byte a second, for ever if let."""

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                try:
                    for byte in self.answer:
                        connection.sendall(bytes([byte]))
                        time.sleep(1)  # a slow server, on purpose
                except OSError:
                    pass  # the poller hung up: that is the point


def test_broken_servers_redirects_inward_and_disguised_entities_are_skipped(
    app, feed_server, settings_override
):
    """Each of these once stopped poll_feeds (or held it for a minute, or got through)."""
    good = feed_server.url + "/good"
    feed_server.routes["/good"] = (200, rss(item(40)), 0.0)
    inner = FeedServer()  # another service on this machine, which no feed may reach
    inner.routes["/secret"] = (200, rss(item(41)), 0.0)
    feed_server.redirects["/inward"] = inner.url + "/secret"
    feed_server.redirects["/same-origin"] = "/good"
    feed_server.redirects["/bad-location"] = "http://[::1"
    laughs16 = BILLION_LAUGHS.decode().replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?')
    feed_server.routes["/laughs16"] = (200, b"\xff\xfe" + laughs16.encode("utf-16-le"), 0.0)
    bad_status = RawServer(b"HTTP/1.1 999999999 \x00\x01 nonsense\r\n\r\n")
    garbage = RawServer(b"this is not HTTP at all\r\n\r\n")
    short = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<rss>")
    drip = DripServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n" + rss(item(42))
    )
    broken = {
        feed_server.url + "/inward": "private address",
        feed_server.url + "/bad-location": "unreachable",
        feed_server.url + "/laughs16": "entities",
        bad_status.url: "unreachable",
        garbage.url: "",  # HTTP/0.9 to http.client: read, then refused as malformed
        short.url: "hung up",
        drip.url: "longer than",
    }
    settings_override(feeds=(*broken, feed_server.url + "/same-origin", good), feed_timeout=1)
    try:
        began = time.monotonic()
        with app.app_context():
            results = poll_feeds()
            errors = dict(db.session.execute(select(Feed.url, Feed.last_error)).all())
        elapsed = time.monotonic() - began
    finally:
        for server in (inner, bad_status, garbage, short, drip):
            server.close()
    for url, reason in broken.items():
        assert str(results[url]).startswith("error:"), (url, results[url])
        assert reason in errors[url], (url, errors[url])
    assert results[good] + results[feed_server.url + "/same-origin"] == 1  # the same article
    assert inner.requests == []  # the inward redirect never reached the inner service
    assert elapsed < len(broken) * 1 + 3  # each one within its 1 s deadline
    with app.app_context():
        titles = set(db.session.scalars(select(Article.title)))
    assert titles == {"Feed story 40 — Çavuşoğlu"}  # nothing from the inner service


def test_a_redirect_to_a_private_address_is_refused_before_any_connection(
    app, feed_server, settings_override
):
    """The check is made on the resolved address before connecting, by name or by
    literal: the service behind the redirect never even sees a connection attempt."""
    inner = socket.create_server(("127.0.0.1", 0))  # listening: a connect would queue here
    inner.setblocking(False)
    port = inner.getsockname()[1]
    feed_server.redirects["/to-literal"] = f"http://127.0.0.1:{port}/admin"
    feed_server.redirects["/to-name"] = f"http://localhost:{port}/admin"
    feeds = (feed_server.url + "/to-literal", feed_server.url + "/to-name")
    settings_override(feeds=feeds, feed_timeout=2)
    try:
        with app.app_context():
            results = poll_feeds()
            errors = dict(db.session.execute(select(Feed.url, Feed.last_error)).all())
        with pytest.raises(BlockingIOError):
            inner.accept()  # nothing ever connected
    finally:
        inner.close()
    for url in feeds:
        assert str(results[url]).startswith("error:")
        assert "private address" in errors[url], errors[url]
    assert [path for path, _headers in feed_server.requests] == ["/to-literal", "/to-name"]
