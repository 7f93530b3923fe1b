"""The global send rate: messages per second across every worker, counted in Redis."""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from mailer.platform.redis_client import redis_client

KEY = "send-rate"


class SendRate:
    """A fixed window per second, shared by all workers through the `limits` library."""

    def __init__(self, per_second: int) -> None:
        client = redis_client()
        storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool, key_prefix="mailer"
        )
        self.limiter = FixedWindowRateLimiter(storage)
        self.item = RateLimitItemPerSecond(per_second)

    def wait_for_slot(self) -> None:
        while not self.limiter.hit(self.item, KEY):
            reset = self.limiter.get_window_stats(self.item, KEY).reset_time
            time.sleep(max(0.0, reset - time.time()))  # throttling, not synchronization
