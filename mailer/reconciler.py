"""Re-enqueues what SQL says is still owed, so a lost queue loses nothing."""

from __future__ import annotations

import logging

from mailer import article_queue, confirmations, delivery, jobs, stack_settings, welcomes

log = logging.getLogger(__name__)


def reconcile() -> dict[str, int]:
    stack_settings.publish()  # renewed each minute while the stack runs
    owed = confirmations.confirmations_owed()
    for subscriber_id in owed:
        jobs.enqueue(jobs.SEND_CONFIRMATION, subscriber_id)
    welcomes_owed = welcomes.welcomes_owed()
    for subscriber_id in welcomes_owed:
        jobs.enqueue(jobs.SEND_WELCOME, subscriber_id)
    if owed or welcomes_owed:
        log.info("re-enqueued %d confirmations, %d welcomes", len(owed), len(welcomes_owed))
    return {
        "confirmations": len(owed),
        "welcomes": len(welcomes_owed),
        "articles_requeued": article_queue.requeue_lost(),
        **delivery.reconcile_digests(),
    }
