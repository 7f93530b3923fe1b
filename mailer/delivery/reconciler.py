"""Re-enqueues what SQL says is still owed, so a lost queue loses nothing."""

from __future__ import annotations

import logging

from mailer import delivery
from mailer.content import intake
from mailer.delivery import confirmations, welcomes
from mailer.platform import jobs, stack_settings
from mailer.subscribers import confirmations as asking
from mailer.subscribers import expiry

log = logging.getLogger(__name__)


# Mails re-enqueued per kind and run, oldest first. Unbounded, a relay down for an hour
# with 100,000 welcomes owed queued 100,000 tasks a minute, each run again before the
# last run's tasks were done, and the queue grew by the million; the next run takes
# the next ones.
REQUEUE_LIMIT = 500


def reconcile() -> dict[str, int]:
    stack_settings.publish()  # renewed each minute while the stack runs
    left = asking.budget_left()
    # Over the hour's budget a queued task would only give its mail back.
    limit = REQUEUE_LIMIT if left is None else min(left, REQUEUE_LIMIT)
    owed = confirmations.confirmations_owed(limit)
    for subscriber_id in owed:
        jobs.enqueue(jobs.SEND_CONFIRMATION, subscriber_id)
    welcomes_owed = welcomes.welcomes_owed(REQUEUE_LIMIT)
    for subscriber_id in welcomes_owed:
        jobs.enqueue(jobs.SEND_WELCOME, subscriber_id)
    if owed or welcomes_owed:
        log.info("re-enqueued %d confirmations, %d welcomes", len(owed), len(welcomes_owed))
    return {
        "confirmations": len(owed),
        "welcomes": len(welcomes_owed),
        "articles_requeued": intake.requeue_lost(),
        "pending_expired": expiry.expire_pending(),
        **delivery.reconcile_digests(),
    }
