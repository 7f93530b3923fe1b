"""The Celery app bound to Flask, and the one way the web side enqueues work.

Tasks are addressed by name, so `mailer` never imports `workers` at import time.
"""

from __future__ import annotations

import logging
import os
import socket

from celery import Celery, Task
from flask import Flask, current_app
from kombu.exceptions import OperationalError

from mailer.platform.db import db

log = logging.getLogger(__name__)

# Task names: the contract between this package and workers/tasks.py.
SEND_CONFIRMATION = "mailer.send_confirmation"
SEND_CONFIRMATIONS = "mailer.send_recent_confirmations"
SEND_WELCOME = "mailer.send_welcome"
RECONCILE = "mailer.reconcile"
SEND_BATCH = "mailer.send_batch"
MATERIALIZE = "mailer.materialize_digest"
PROCESS_ARTICLES = "mailer.process_articles"
SCHEDULED_DIGEST = "mailer.scheduled_digest"
POLL_FEEDS = "mailer.poll_feeds"
SEND_TEST = "mailer.send_test"
CHECK_IMPORT = "mailer.check_import"
APPLY_IMPORT = "mailer.apply_import"

# Redelivery of unacknowledged tasks happens after this many seconds; every
# countdown and retry backoff stays far below it (see email-rules.md §7).
VISIBILITY_TIMEOUT = 3600


def init_celery(app: Flask) -> Celery:
    class FlaskTask(Task):
        # A task whose steps commit as they go (the send loop's claims and flushes, each
        # feed, each mail) sets this: each of its db.transaction() blocks is a unit.
        commits_per_step = False

        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                if self.commits_per_step:
                    return self.run(*args, **kwargs)
                with db.unit_of_work():
                    return self.run(*args, **kwargs)

    settings = app.config["MAILER"]
    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT,
            "socket_connect_timeout": 5,
        },
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A task is acknowledged after it ran, and a worker killed mid-task puts
        # it back: combined with idempotent tasks this loses nothing.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Publishing must not hang a web request when Redis is down; the
        # reconciler re-enqueues whatever SQL says is owed.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        beat_schedule={
            "reconcile": {"task": RECONCILE, "schedule": 60.0},
            "scheduled-digest": {"task": SCHEDULED_DIGEST, "schedule": 60.0},
            "poll-feeds": {"task": POLL_FEEDS, "schedule": settings.feed_interval_minutes * 60.0},
        },
        timezone="UTC",
        enable_utc=True,
    )
    if settings.worker_concurrency:
        celery.conf.worker_concurrency = settings.worker_concurrency
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def enqueue(task_name: str, *args: object) -> bool:
    """Queues a task by name once the open unit of work commits (at once outside one).
    False when the broker is unreachable now; deferred, the reconciler covers it."""
    return enqueue_in(task_name, 0, *args)


def enqueue_in(task_name: str, countdown: float, *args: object) -> bool:
    """Like enqueue, to run `countdown` seconds from now (keep it far below an hour)."""
    if db.in_unit():
        db.after_commit(lambda: _publish(task_name, countdown, args))
        return True
    return _publish(task_name, countdown, args)


def _publish(task_name: str, countdown: float, args: tuple[object, ...]) -> bool:
    celery: Celery = current_app.extensions["celery"]
    try:
        celery.send_task(task_name, args=list(args), countdown=countdown or None)
    except OperationalError:
        log.warning("broker unreachable; %s%r left for the reconciler", task_name, args)
        return False
    return True


def worker_name() -> str:
    """This process, as named in send claims and queue consumers."""
    return f"{socket.gethostname()}:{os.getpid()}"
