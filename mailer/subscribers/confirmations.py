"""Asking for a reader's confirmation mail: a drain of owed confirmations is queued,
one Redis command while one is queued already (delivery/confirmations.py sends them)."""

from __future__ import annotations

import contextlib
import logging

import redis

from mailer.platform import jobs
from mailer.platform.redis_client import redis_client

log = logging.getLogger(__name__)

DRAIN_FLAG = "mailer:confirmations:drain-queued"


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
