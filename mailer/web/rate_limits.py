"""Rate limits on the public forms: sliding windows counted in Redis, one round trip a request.

Each limit keeps a counter per fixed window and weighs the previous window's counter by
how much of it still lies within the last `expiry` seconds (the sliding window counter
of Cloudflare and of limits' "sliding-window-counter"). Plain fixed windows let twice
the limit through around a boundary: ten failed logins at 12:00:59 and ten more at
12:01:01.

A view declares its limits (`@rate_limit("10 per minute;100 per hour")`, per IP unless
told otherwise, optionally counted only when the answer says so, as failed logins are),
or holds a request to limits itself with hold() once its cheap checks passed, as the
signup does: a counter keyed by what a request carries must not exist for a request
that was refused anyway. Every limit of a request is counted in one round trip.

Nothing a request sends can grow Redis: a key names its limit, its window and a keyed
hash of fixed size, never the value itself, and each limit keeps at most
MAILER_RATE_LIMIT_MAX_KEYS counters a window. Beyond that, every newcomer counts on one
shared counter of the same limit, so a flood of fresh values meets the limit as one
visitor while everybody already counted keeps their own.

A limiter that cannot count refuses the request with a 503 (a login or signup that
nobody counts is one an attacker repeats at will); a view whose refusal would keep mail
coming to a reader who asked for less declares fail_open.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from flask import Flask, Response, current_app, make_response, request
from limits import RateLimitItem, parse_many
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

log = logging.getLogger(__name__)

View = TypeVar("View", bound=Callable[..., Any])
LimitValue = str | Callable[[], str]
ATTRIBUTE = "mailer_rate_limits"
PREFIX = "mailer:limits"
HASH_BYTES = 12  # 96 bits: no two values of one window share a counter by chance
BLIND_RETRY_AFTER = 30  # seconds: a Redis that restarts is back by then

# KEYS: five a window (own, previous, shared, previous shared, census).
# ARGV[1]: the ceiling; then two a window: "1" to count now ("0" to read), the expiry.
# Returns two integers a window: its own count, the previous window's.
COUNT_SCRIPT = """
local ceiling = tonumber(ARGV[1])
local replies = {}
for i = 0, #KEYS / 5 - 1 do
  local own, previous = KEYS[5 * i + 1], KEYS[5 * i + 2]
  local shared, census = KEYS[5 * i + 3], KEYS[5 * i + 5]
  local expire_at = ARGV[2 * i + 3]
  if redis.call("EXISTS", own) == 0
      and tonumber(redis.call("GET", census) or "0") >= ceiling then
    own, previous = shared, KEYS[5 * i + 4]
  end
  local count
  if ARGV[2 * i + 2] == "1" then
    count = redis.call("INCR", own)
    if count == 1 then
      redis.call("EXPIREAT", own, expire_at)
      if own ~= shared then
        redis.call("INCR", census)
        redis.call("EXPIREAT", census, expire_at)
      end
    end
  else
    count = tonumber(redis.call("GET", own) or "0")
  end
  replies[#replies + 1] = count
  replies[#replies + 1] = tonumber(redis.call("GET", previous) or "0")
end
return replies
"""


def clock() -> float:
    """Now, in seconds; a function of its own so a test can move it across a window."""
    return time.time()


def remote_address() -> str:
    return request.remote_addr or "unknown"


def network_of(address: str) -> str:
    """The IPv4 /24 or IPv6 /56 an address is in: what one customer of a provider holds."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def remote_network() -> str:
    return network_of(remote_address())


@dataclass(frozen=True)
class Per:
    """What a limit counts by: a kind, named in its keys, and this request's value of it."""

    kind: str
    value: Callable[[], str]


PER_IP = Per("ip", remote_address)
PER_NETWORK = Per("network", remote_network)


@dataclass(frozen=True)
class Limit:
    """One limit as this request meets it."""

    text: str  # "10 per minute;100 per hour"
    kind: str
    who: str
    counted: bool = True  # counted now (else only read now, and counted after the view)


@dataclass(frozen=True)
class Declared:
    value: LimitValue
    per: Per
    counts: Callable[[Response], bool] | None  # None: every request counts
    fail_open: bool

    def met(self, *, counted: bool | None = None) -> Limit:
        text = self.value() if callable(self.value) else self.value
        now = self.counts is None if counted is None else counted
        return Limit(text, self.per.kind, self.per.value(), now)


def rate_limit(
    value: LimitValue,
    *,
    per: Per = PER_IP,
    counts: Callable[[Response], bool] | None = None,
    fail_open: bool = False,
) -> Callable[[View], View]:
    """Declares a limit on a view; init_rate_limits() wraps the views of each app.

    A view runs unlimited when Redis cannot count only if each of its limits says
    fail_open."""

    def declare(view: View) -> View:
        view.__dict__.setdefault(ATTRIBUTE, []).append(Declared(value, per, counts, fail_open))
        return view

    return declare


@functools.lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(text))


@functools.lru_cache(maxsize=4)
def _hash_key(secret: str) -> bytes:
    return hashlib.sha256(b"mailer rate-limit keys\0" + secret.encode()).digest()


def _digest(who: str) -> str:
    # Keyed: Redis holds no address a dictionary could recover.
    secret = current_app.config["MAILER"].secret_keys[0]
    digest = hashlib.blake2b(who.encode(), digest_size=HASH_BYTES, key=_hash_key(secret))
    return digest.hexdigest()


@dataclass(frozen=True)
class Window:
    keys: tuple[str, str, str, str, str]  # own, previous, shared, previous shared, census
    item: RateLimitItem
    ends_at: int
    previous_weight: float  # share of the previous window still within the last `expiry` s
    counted: bool


def _window(endpoint: str, limit: Limit, item: RateLimitItem, now: float) -> Window:
    expiry = item.get_expiry()
    start = int(now // expiry) * expiry
    base = f"{PREFIX}:{endpoint}:{limit.kind}:{item.amount}/{expiry}:"
    this, last, digest = f"{base}{start}:", f"{base}{start - expiry}:", _digest(limit.who)
    keys = (f"{this}{digest}", f"{last}{digest}", f"{this}shared", f"{last}shared", f"{this}n")
    weight = 1 - (now - start) / expiry
    return Window(keys, item, start + expiry, weight, limit.counted)


def _windows(endpoint: str, limits: Iterable[Limit], now: float) -> list[Window]:
    return [_window(endpoint, limit, item, now) for limit in limits for item in _items(limit.text)]


def _client() -> tuple[redis.Redis, Script]:
    clients = current_app.extensions["mailer.web.rate_limits"]
    pid = os.getpid()  # one client per process: connections do not survive fork
    if pid not in clients:
        settings = current_app.config["MAILER"]
        client = redis.Redis.from_url(
            settings.rate_limit_redis_url or settings.redis_url,
            # A Redis that hangs or is gone must not hold a web worker for seconds: the
            # client's default retries back off for up to 7 s before giving up.
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 1),
        )
        clients[pid] = (client, client.register_script(COUNT_SCRIPT))
    return clients[pid]


def _count(windows: list[Window]) -> list[tuple[int, float]]:
    """Each window's (own count, weighted count) with this request: counted windows are
    incremented, the rest read and this request added."""
    keys: list[str] = []
    args: list[int | str] = [current_app.config["MAILER"].rate_limit_max_keys]
    for window in windows:
        keys.extend(window.keys)
        args.extend(["1" if window.counted else "0", window.ends_at + window.item.get_expiry() + 1])
    _redis, script = _client()
    replies = script(keys=keys, args=args)
    counts = []
    for n, window in enumerate(windows):
        own = int(replies[2 * n]) + (0 if window.counted else 1)
        counts.append((own, own + int(replies[2 * n + 1]) * window.previous_weight))
    return counts


def _retry_after(window: Window, own: int, now: float) -> int:
    """Seconds until this window's count, then the previous one, weighs little enough."""
    expiry = window.item.get_expiry()
    fading = expiry * max(0.0, 1 - (window.item.amount - 1) / max(own, 1))
    return max(1, int(window.ends_at - now + fading) + 1)


def _refuse_over(windows: list[Window], counts: list[tuple[int, float]], now: float) -> None:
    over = [
        _retry_after(window, own, now)
        for window, (own, weighted) in zip(windows, counts, strict=True)
        if weighted > window.item.amount
    ]
    if over:
        raise TooManyRequests(retry_after=max(over))


def _blind(exc: redis.RedisError) -> ServiceUnavailable:
    log.error("request refused: rate limits cannot be counted, Redis failed: %s", exc)
    return ServiceUnavailable(retry_after=BLIND_RETRY_AFTER)


def hold(endpoint: str, limits: Iterable[Limit]) -> None:
    """Counts this request against each limit: TooManyRequests over one of them,
    ServiceUnavailable when Redis cannot count."""
    now = clock()
    windows = _windows(endpoint, limits, now)
    try:
        counts = _count(windows)
    except redis.RedisError as exc:
        raise _blind(exc) from None
    _refuse_over(windows, counts, now)


def _count_after(endpoint: str, limits: list[Limit], now: float) -> None:
    try:
        _count(_windows(endpoint, limits, now))
    except redis.RedisError as exc:
        # The answer is made and changed nothing; the next request is refused if Redis
        # is still gone.
        log.warning("rate limit not counted, Redis failed: %s", exc)


def _limited(endpoint: str, view: Callable[..., Any], declared: list[Declared]) -> Callable:
    deferred = [d for d in declared if d.counts is not None]
    fail_open = all(d.fail_open for d in declared)

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        now = clock()
        windows = _windows(endpoint, [d.met() for d in declared], now)
        try:
            counts = _count(windows)
        except redis.RedisError as exc:
            if not fail_open:
                raise _blind(exc) from None
            log.warning("rate limits not checked, Redis failed: %s", exc)
            return view(*args, **kwargs)
        _refuse_over(windows, counts, now)
        response = make_response(view(*args, **kwargs))
        owed = [d.met(counted=True) for d in deferred if d.counts and d.counts(response)]
        if owed:
            _count_after(endpoint, owed, now)
        return response

    return limited


def init_rate_limits(app: Flask) -> None:
    """Wraps every view of this app that declared limits."""
    app.extensions["mailer.web.rate_limits"] = {}
    for endpoint, view in list(app.view_functions.items()):
        declared = getattr(view, ATTRIBUTE, None)
        if declared:
            app.view_functions[endpoint] = _limited(endpoint, view, list(declared))
