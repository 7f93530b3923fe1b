"""The Redis queue of accepted articles (a Stream with a consumer group).

SQL holds every article; the stream only says which ones the intake worker has
still to take in. The intake worker prepares each article (a plain-text summary
when the site sent none) and marks it ready; only ready articles go into a
digest. If Redis loses the stream, the reconciler queues again every article
that SQL says is not ready yet.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from sqlalchemy import select

from mailer.content.summaries import summary_of
from mailer.models import Article, utcnow
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.redis_client import redis_client

log = logging.getLogger(__name__)

STREAM = "mailer:articles"
GROUP = "intake"
DRAIN_FLAG = "mailer:articles:drain-queued"
READ_COUNT = 200
# An entry a consumer read but never acknowledged for this long is taken over
# (that consumer died); preparing an article takes milliseconds.
CLAIM_IDLE_MS = 30_000
# The reconciler leaves articles this young to the queue entry made for them.
REQUEUE_AFTER = timedelta(minutes=1)


def publish(article_ids: list[int]) -> bool:
    """Queues articles for intake (after their commit); False when Redis is unreachable."""
    if not article_ids:
        return True
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        for article_id in article_ids:
            pipe.xadd(STREAM, {"article_id": article_id})
        pipe.execute()
        # One drain task at a time is enough; the task clears the flag when it starts.
        if client.set(DRAIN_FLAG, 1, nx=True, ex=60):
            jobs.enqueue(jobs.PROCESS_ARTICLES)
    except redis.RedisError as exc:
        log.warning(
            "article queue unavailable (%s); the reconciler will queue %s", exc, article_ids
        )
        return False
    return True


def _ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain(consumer: str) -> int:
    """Takes every queued article in, marking it ready. Returns how many entries it handled."""
    client = redis_client()
    client.delete(DRAIN_FLAG)
    _ensure_group(client)
    handled = 0
    # First what a dead consumer left unacknowledged, then what nobody has read.
    claimed: list = client.xautoclaim(  # type: ignore[assignment] # a sync client
        STREAM, GROUP, consumer, CLAIM_IDLE_MS, "0-0", READ_COUNT
    )
    stale = claimed[1]
    if stale:
        handled += _take_in(client, stale)
    while True:
        response: list = client.xreadgroup(  # type: ignore[assignment] # a sync client
            GROUP, consumer, {STREAM: ">"}, count=READ_COUNT
        )
        entries = response[0][1] if response else []
        if not entries:
            return handled
        handled += _take_in(client, entries)


def _take_in(client: redis.Redis, entries: list) -> int:
    ids = [int(fields[b"article_id"]) for _id, fields in entries if fields]
    mark_ready(ids)
    entry_ids = [entry_id for entry_id, _fields in entries]
    # Acknowledged only after the SQL commit: a crash before it leaves them pending.
    client.xack(STREAM, GROUP, *entry_ids)
    client.xdel(STREAM, *entry_ids)
    return len(entries)


def mark_ready(article_ids: list[int]) -> None:
    """Prepares articles for the digest; running it twice changes nothing."""
    if not article_ids:
        return
    session = db.session
    with db.transaction():
        for article in session.scalars(
            select(Article).where(Article.id.in_(article_ids), Article.ready_at.is_(None))
        ):
            article.summary = summary_of(article) or None
            article.ready_at = utcnow()


def not_ready_ids(*, older_than: timedelta | None = None) -> list[int]:
    """Articles accepted but not taken in yet, per SQL (the record)."""
    query = select(Article.id).where(
        Article.ready_at.is_(None), Article.removed_at.is_(None), Article.digest_id.is_(None)
    )
    if older_than is not None:
        query = query.where(Article.created_at < utcnow() - older_than)
    return list(db.session.scalars(query))


def requeue_lost() -> int:
    """Queues again the articles that are still not ready a while after they came in."""
    ids = not_ready_ids(older_than=REQUEUE_AFTER)
    if ids and publish(ids):
        log.info("re-queued %d articles that Redis had lost", len(ids))
        return len(ids)
    return 0
