"""Re-enqueues what SQL says is still owed, so a lost queue loses nothing."""

from __future__ import annotations

import logging

from mailer import article_queue, confirmations, delivery, jobs

log = logging.getLogger(__name__)


def reconcile() -> dict[str, int]:
    owed = confirmations.confirmations_owed()
    for subscriber_id in owed:
        jobs.enqueue(jobs.SEND_CONFIRMATION, subscriber_id)
    if owed:
        log.info("re-enqueued %d confirmation mails", len(owed))
    return {
        "confirmations": len(owed),
        "articles_requeued": article_queue.requeue_lost(),
        **delivery.reconcile_digests(),
    }
