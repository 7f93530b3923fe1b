"""Asking for a reader's confirmation mail, and the service's hourly budget of them.

A drain of owed confirmations is queued, one Redis command while one is queued already
(delivery/confirmations.py sends them). Every confirmation sent takes a place in the
budget (MAILER_CONFIRMATIONS_PER_HOUR, a sliding hour): the signup form is open to
anyone, so without it the service mails as many strangers as requests can reach it.
Over budget, signups are still recorded and their mails stay owed in SQL; the
reconciler sends them as places free up.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import cast

import redis
from flask import current_app

from mailer.models import utcnow
from mailer.platform import jobs
from mailer.platform.redis_client import redis_client

log = logging.getLogger(__name__)

DRAIN_FLAG = "mailer:confirmations:drain-queued"
BUDGET_KEY = "mailer:confirmations:sent-last-hour"  # a sorted set: one member per mail
REACHED_KEY = "mailer:confirmations:budget-reached-at"
WINDOW = timedelta(hours=1)

# Atomic, so two workers never both take the last place. The set holds at most the
# budget's members: places older than the hour are dropped before counting.
TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def request_sending() -> None:
    """After a signup's commit: makes sure a drain is queued (the reconciler covers Redis
    being down). While one is queued this is a single Redis command and no task."""
    try:
        if not redis_client().set(DRAIN_FLAG, 1, nx=True, ex=60):
            return  # a drain is queued and has not started: it will see this reader
    except redis.RedisError as exc:
        log.warning("confirmation not queued (%s); the reconciler will send it", exc)
        return
    if not jobs.enqueue(jobs.SEND_CONFIRMATIONS):
        with contextlib.suppress(redis.RedisError):
            redis_client().delete(DRAIN_FLAG)  # so the next signup tries again


def _budget() -> int:
    return int(current_app.config["MAILER"].confirmations_per_hour)


def take_budget_place() -> bool:
    """One confirmation mail's place in the hour's budget; False when the budget is spent
    (and noted for the console) or Redis cannot count: the mail stays owed, nothing is lost."""
    budget = _budget()
    if budget == 0:
        return True
    now = utcnow().timestamp()
    try:
        taken = redis_client().eval(
            TAKE_PLACE,
            1,
            BUDGET_KEY,
            now - WINDOW.total_seconds(),
            now,
            budget,
            uuid.uuid4().hex,
            int(WINDOW.total_seconds()) * 2,
        )
    except redis.RedisError as exc:
        # Closed: an owed mail waits for the reconciler, an uncounted one may be abuse.
        log.warning("confirmation budget not counted (%s); the mail stays owed", exc)
        return False
    if not taken:
        with contextlib.suppress(redis.RedisError):
            redis_client().set(REACHED_KEY, str(now), ex=int(WINDOW.total_seconds()) * 2)
    return bool(taken)


def budget_left() -> int | None:
    """Places left in this hour's budget; None when there is no budget."""
    budget = _budget()
    if budget == 0:
        return None
    since = (utcnow() - WINDOW).timestamp()
    try:
        used = cast(int, redis_client().zcount(BUDGET_KEY, f"({since}", "+inf"))
    except redis.RedisError:
        return 0
    return max(0, budget - used)


def budget_reached_at() -> datetime | None:
    """When the budget was last found spent, if that was within the last hour."""
    try:
        raw = cast(bytes | None, redis_client().get(REACHED_KEY))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    reached = datetime.fromtimestamp(float(raw), tz=utcnow().tzinfo)
    return reached if reached > utcnow() - WINDOW else None
