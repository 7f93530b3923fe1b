"""This process's Redis client for mailer's own keys (queues, journals, counters)."""

from __future__ import annotations

import os

import redis
from flask import current_app


def redis_client() -> redis.Redis:
    clients = current_app.extensions.setdefault("mailer.redis", {})
    pid = os.getpid()  # one client per process: connections do not survive fork
    if pid not in clients:
        clients[pid] = redis.Redis.from_url(
            current_app.config["MAILER"].redis_url, socket_timeout=5, socket_connect_timeout=5
        )
    return clients[pid]
