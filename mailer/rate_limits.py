"""Rate limits on the public forms: sliding windows counted in Redis, one round trip a request.

Each limit keeps a counter per fixed window and weighs the previous window's counter by
how much of it still lies within the last `expiry` seconds (the sliding window counter
of Cloudflare and of limits' "sliding-window-counter"). Plain fixed windows let twice
the limit through around a boundary: ten failed logins at 12:00:59 and ten more at
12:01:01.

A view declares its limits (`@rate_limit("10 per minute;100 per hour")`, optionally
per a key of its own, optionally counted only when the answer says so, as failed
logins are). Every limit a request is held to is counted in one pipelined round trip
before the view runs: the signup form is the busiest public page, and a round trip
per limit was a third of its Redis time. Redis down never stops a reader: the
request goes through unlimited and the failure is logged.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from flask import Flask, Response, current_app, make_response, request
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])
LimitValue = str | Callable[[], str]
ATTRIBUTE = "mailer_rate_limits"
PREFIX = "mailer:limits"


@dataclass(frozen=True)
class Declared:
    value: LimitValue
    key_func: Callable[[], str] | None
    counts: Callable[[Response], bool] | None  # None: every request counts


def clock() -> float:
    """Now, in seconds; a function of its own so a test can move it across a window."""
    return time.time()


def rate_limit(
    value: LimitValue,
    *,
    key_func: Callable[[], str] | None = None,
    counts: Callable[[Response], bool] | None = None,
) -> Callable[[View], View]:
    """Declares a limit on a view; init_rate_limits() wraps the views of each app."""

    def declare(view: View) -> View:
        view.__dict__.setdefault(ATTRIBUTE, []).append(Declared(value, key_func, counts))
        return view

    return declare


def remote_address() -> str:
    return request.remote_addr or "unknown"


@functools.lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


@dataclass(frozen=True)
class Window:
    key: str
    previous_key: str
    item: RateLimitItem
    ends_at: int
    previous_weight: float  # share of the previous window still within the last `expiry` s
    counted: bool  # counted now (else only read now, and counted after the view)


def _windows(endpoint: str, declared: list[Declared], now: float) -> list[Window]:
    windows = []
    for limit in declared:
        text = limit.value() if callable(limit.value) else limit.value
        who = (limit.key_func or remote_address)()
        for item in _items(text):
            expiry = item.get_expiry()
            start = int(now // expiry) * expiry
            key = f"{PREFIX}:{endpoint}:{who}:{item.amount}/{expiry}:"
            weight = 1 - (now - start) / expiry
            counted = limit.counts is None
            windows.append(
                Window(
                    f"{key}{start}", f"{key}{start - expiry}", item, start + expiry, weight, counted
                )
            )
    return windows


def _client() -> redis.Redis:
    clients = current_app.extensions["mailer.rate_limits"]
    pid = os.getpid()  # one client per process: connections do not survive fork
    if pid not in clients:
        # Short timeouts: a Redis that hangs must not hang the signup form.
        clients[pid] = redis.Redis.from_url(
            current_app.config["MAILER"].redis_url, socket_timeout=2, socket_connect_timeout=2
        )
    return clients[pid]


def _increment(pipe: redis.client.Pipeline, window: Window) -> None:
    pipe.incr(window.key)
    # Kept through the next window too, which weighs it.
    pipe.expireat(window.key, window.ends_at + window.item.get_expiry() + 1)


def _count(windows: list[Window]) -> list[tuple[int, float]]:
    """Each window's (own count, weighted count) with this request: counted windows are
    incremented, the rest read and this request added."""
    pipe = _client().pipeline(transaction=False)
    for window in windows:
        if window.counted:
            _increment(pipe, window)
        else:
            pipe.get(window.key)
        pipe.get(window.previous_key)
    replies = pipe.execute()
    counts, position = [], 0
    for window in windows:
        own = int(replies[position] or 0) + (0 if window.counted else 1)
        position += 2 if window.counted else 1
        previous = int(replies[position] or 0)
        position += 1
        counts.append((own, own + previous * window.previous_weight))
    return counts


def _retry_after(window: Window, own: int, now: float) -> int:
    """Seconds until this window's count, then the previous one, weighs little enough."""
    expiry = window.item.get_expiry()
    fading = expiry * max(0.0, 1 - (window.item.amount - 1) / max(own, 1))
    return max(1, int(window.ends_at - now + fading) + 1)


def _count_after(windows: list[Window]) -> None:
    pipe = _client().pipeline(transaction=False)
    for window in windows:
        _increment(pipe, window)
    pipe.execute()


def _limited(endpoint: str, view: Callable[..., Any], declared: list[Declared]) -> Callable:
    deferred = [d for d in declared if d.counts is not None]

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        now = clock()
        windows = _windows(endpoint, declared, now)
        try:
            counts = _count(windows)
        except redis.RedisError as exc:
            log.warning("rate limits not checked, Redis failed: %s", exc)
            return view(*args, **kwargs)
        over = [
            _retry_after(window, own, now)
            for window, (own, weighted) in zip(windows, counts, strict=True)
            if weighted > window.item.amount
        ]
        if over:
            raise TooManyRequests(retry_after=max(over))
        response = make_response(view(*args, **kwargs))
        owed = [d for d in deferred if d.counts is not None and d.counts(response)]
        if owed:
            try:
                _count_after(_windows(endpoint, owed, now))
            except redis.RedisError as exc:
                log.warning("rate limit not counted, Redis failed: %s", exc)
        return response

    return limited


def init_rate_limits(app: Flask) -> None:
    """Wraps every view of this app that declared limits."""
    app.extensions["mailer.rate_limits"] = {}
    for endpoint, view in list(app.view_functions.items()):
        declared = getattr(view, ATTRIBUTE, None)
        if declared:
            app.view_functions[endpoint] = _limited(endpoint, view, list(declared))
