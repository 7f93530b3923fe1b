"""Taking accepted articles in: each is prepared (a plain-text summary when the site sent
none) off the request's path and marked ready; only ready articles go into a digest.

An ordinary task does it, queued once the article's row is committed. SQL is the record:
should the task be lost (a Redis that restarted empty, a killed worker), the reconciler
sees articles still not ready a minute after they came in and queues the task again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from mailer.content.summaries import summary_of
from mailer.models import Article, utcnow
from mailer.platform import jobs
from mailer.platform.db import db

log = logging.getLogger(__name__)

BATCH = 200  # articles prepared per step of one task
# The reconciler leaves articles this young to the task queued for them.
REQUEUE_AFTER = timedelta(minutes=1)


def request_intake() -> None:
    """Queues the intake once the open unit of work commits; running it twice is harmless."""
    jobs.enqueue(jobs.PROCESS_ARTICLES)


def take_in_waiting() -> int:
    """Prepares every article not ready yet, a batch per transaction. Returns how many."""
    handled = 0
    while ids := not_ready_ids(limit=BATCH):
        mark_ready(ids)
        handled += len(ids)
    return handled


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


def not_ready_ids(*, older_than: timedelta | None = None, limit: int | None = None) -> list[int]:
    """Articles accepted but not taken in yet, per SQL (the record)."""
    query = select(Article.id).where(
        Article.ready_at.is_(None), Article.removed_at.is_(None), Article.digest_id.is_(None)
    )
    if older_than is not None:
        query = query.where(Article.created_at < utcnow() - older_than)
    return list(db.session.scalars(query.order_by(Article.id).limit(limit)))


def requeue_lost() -> int:
    """Queues the intake again when articles are still not ready a while after they came in."""
    lost = len(not_ready_ids(older_than=REQUEUE_AFTER))
    if lost and jobs.enqueue(jobs.PROCESS_ARTICLES):
        log.info("%d articles were not taken in; the intake is queued again", lost)
        return lost
    return 0
