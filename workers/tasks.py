"""Celery tasks. Each takes ids, calls one domain function, and turns errors into retries."""

from __future__ import annotations

from celery import shared_task

from mailer import delivery
from mailer.content import feeds, intake
from mailer.delivery import confirmations, reconciler, welcomes
from mailer.delivery import controls as digest_controls
from mailer.digests import schedule as scheduler
from mailer.mail.smtp import TemporaryFailure
from mailer.platform import jobs
from mailer.subscribers import csv_files as subscriber_csv

# One mail to one address: 4xx and lost connections retry with backoff and jitter,
# which stays far below the broker's visibility timeout (jobs.VISIBILITY_TIMEOUT).
RETRY_ON_TEMPORARY_FAILURE = {
    "autoretry_for": (TemporaryFailure,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
}


@shared_task(
    name=jobs.SEND_CONFIRMATION, max_retries=8, commits_per_step=True, **RETRY_ON_TEMPORARY_FAILURE
)
def send_confirmation(subscriber_id: int) -> str:
    return confirmations.send_confirmation(subscriber_id)


@shared_task(
    name=jobs.SEND_CONFIRMATIONS, soft_time_limit=120, commits_per_step=True, time_limit=150
)
def send_recent_confirmations() -> int:
    return confirmations.send_recent_confirmations()


@shared_task(
    name=jobs.SEND_WELCOME, max_retries=8, commits_per_step=True, **RETRY_ON_TEMPORARY_FAILURE
)
def send_welcome(subscriber_id: int) -> str:
    return welcomes.send_welcome(subscriber_id)


@shared_task(name=jobs.RECONCILE, commits_per_step=True)
def reconcile() -> dict[str, int]:
    return reconciler.reconcile()


@shared_task(name=jobs.SEND_BATCH, commits_per_step=True)
def send_batch(digest_id: int, from_id: int | None = None) -> dict[str, object]:
    result = delivery.send_batch(digest_id, from_id)
    if result.retry_in is not None:
        delivery.schedule_retry(digest_id, result.retry_in)
    return {"claimed": result.claimed, "sent": result.sent, "failed": result.failed}


# Work on outside input has a hard ceiling: a task stuck on one feed or article is
# stopped (soft first, so it can end cleanly) instead of holding a worker for good.
@shared_task(name=jobs.MATERIALIZE, soft_time_limit=1800, commits_per_step=True, time_limit=1860)
def materialize_digest(digest_id: int) -> int:
    return delivery.materialize_digest(digest_id)


@shared_task(name=jobs.PROCESS_ARTICLES, soft_time_limit=120, commits_per_step=True, time_limit=150)
def process_articles() -> int:
    return intake.take_in_waiting()


@shared_task(name=jobs.SCHEDULED_DIGEST)
def scheduled_digest() -> int | None:
    return scheduler.run_schedule()


@shared_task(name=jobs.POLL_FEEDS, soft_time_limit=600, commits_per_step=True, time_limit=660)
def poll_feeds() -> dict[str, int | str]:
    return feeds.poll_feeds()


@shared_task(name=jobs.SEND_TEST, max_retries=3, **RETRY_ON_TEMPORARY_FAILURE)
def send_test(address: str, requested_by: str) -> bool:
    return digest_controls.send_test(address, requested_by)


@shared_task(name=jobs.CHECK_IMPORT, soft_time_limit=600, time_limit=660)
def check_import(import_id: int) -> dict:
    return subscriber_csv.check(import_id)


@shared_task(name=jobs.APPLY_IMPORT, soft_time_limit=1800, commits_per_step=True, time_limit=1860)
def apply_import(import_id: int) -> dict:
    return subscriber_csv.apply(import_id)
