"""Fetching a feed: httpx, within one deadline, a size cap, and no connection inward.

httpx does the HTTP (redirects, headers, streaming); its transport here is httpcore's
connection pool on a network backend of our own, because only there is the address a
connection goes to known before it is made: a host other than the configured feed's
own is resolved here, and connected to by that address only if it is public. So a
redirect to another service on a private network is refused without a packet sent to
it, and DNS cannot answer differently between the check and the connection. The same
backend ends every read and write at the fetch's deadline, which per-read timeouts
alone cannot do against a server that sends a byte at a time.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

USER_AGENT = "mailer-feed-poller/1.0"
MAX_REDIRECTS = 5


class FeedError(Exception):
    """Why a feed could not be used this time."""


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: not modified since the last poll
    etag: str | None
    last_modified: str | None


def fetch(
    url: str, etag: str | None, last_modified: str | None, *, timeout: float, max_bytes: int
) -> Fetched:
    """GETs a feed within one deadline for everything (connect, headers, body, redirects).

    Raises FeedError for anything that is not a feed document we may read.
    """
    parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    if parsed is None or not parsed.host:
        raise FeedError(f"not an http:// or https:// URL: {url[:200]!r}")
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    transport = _FeedTransport(_GuardedBackend(_origin(parsed), deadline))
    client = httpx.Client(
        transport=transport,
        headers=headers,
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,  # a proxy from the environment would connect where we cannot see
    )
    try:
        with client, client.stream("GET", url) as response:
            if response.status_code == 304:
                return Fetched(None, etag, last_modified)
            if response.status_code != 200:
                raise FeedError(f"HTTP {response.status_code}")
            body = _read_body(response, max_bytes)
            return Fetched(
                body, response.headers.get("ETag"), response.headers.get("Last-Modified")
            )
    except httpx.TooManyRedirects:
        raise FeedError(f"more than {MAX_REDIRECTS} redirects") from None
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, UnicodeError) as exc:
        # Refused, reset, timed out, a broken status line, a URL that does not parse:
        # all of them mean the feed cannot be read this time.
        if time.monotonic() >= deadline:  # the deadline cut it: say so, not what broke
            raise FeedError(f"took longer than {timeout:g} s") from None
        raise FeedError(f"unreachable: {type(exc).__name__}: {exc}") from None


def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:  # streamed: a huge body is never held whole
                raise FeedError(f"larger than {max_bytes} bytes")
            chunks.append(chunk)
    except httpx.RemoteProtocolError as exc:
        raise FeedError(f"the server hung up before the end of the body ({exc})") from None
    return b"".join(chunks)


def _origin(url: httpx.URL) -> tuple[str, int]:
    """(host, port) as httpcore asks the network backend for them."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.raw_host.decode("ascii").lower(), port


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects to the feed's own host by name (it may be the site next door, on a private
    network), anywhere else only to a public address; every operation ends at the deadline."""

    def __init__(self, feed_origin: tuple[str, int], deadline: float) -> None:
        self.feed_origin = feed_origin
        self.deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        target = host
        if (host.lower(), port) != self.feed_origin:
            target = _public_address(host, port)
        stream = self._inner.connect_tcp(
            target,
            port,
            timeout=_within(self.deadline, timeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise FeedError("feeds are fetched over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _public_address(host: str, port: int) -> str:
    """The address a connection to `host` will use, refused unless it is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    address = str(infos[0][4][0])
    if not ipaddress.ip_address(address.split("%")[0]).is_global:
        raise FeedError(f"redirected to a private address ({address}); refused")
    return address


def _within(deadline: float, timeout: float | None) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("the feed's deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within(self._deadline, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within(self._deadline, timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _within(self._deadline, timeout)
        )
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


# httpcore's errors as httpx's, so that callers of an httpx client see one family.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.NetworkError, httpx.NetworkError),
)


def _as_httpx(exc: Exception, request: httpx.Request | None = None) -> Exception | None:
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(str(exc), request=request)
    return None  # ours (a FeedError) or a bug: as it is


class _FeedTransport(httpx.BaseTransport):
    """httpx's transport on httpcore's pool with the guarded backend (httpx's own
    HTTPTransport takes no network backend)."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(), network_backend=backend
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = self._pool.handle_request(core_request)
        except Exception as exc:
            mapped = _as_httpx(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
