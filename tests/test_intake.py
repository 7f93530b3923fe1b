"""Accepted articles are taken in by an ordinary task after their commit; a Redis that
loses the task loses no article."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from mailer import create_app
from mailer.access.api_tokens import create_api_token
from mailer.content import intake
from mailer.delivery.reconciler import reconcile
from mailer.models import Article, utcnow
from mailer.platform.db import db
from mailer.platform.settings import load_settings
from tests.conftest import RedisServer
from tests.helpers import wait_until


def ready_count(app) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Article).where(Article.ready_at.is_not(None))
        )


def post_articles(app, count: int) -> None:
    with app.app_context():
        token = create_api_token("queue")
    client = app.test_client()
    for n in range(count):
        response = client.post(
            "/api/articles",
            json={
                "title": f"Queued {n}",
                "url": f"https://news.example.org/q/{n}",
                "body_html": f"<p>Body of <b>article {n}</b>, long enough to summarise.</p>",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201


@pytest.mark.slow  # a real worker starts
def test_the_intake_task_takes_articles_in(app, worker):
    post_articles(app, 25)
    wait_until(lambda: ready_count(app) == 25, timeout=20, message="articles were not taken in")
    with app.app_context():
        summary = db.session.scalar(select(Article.summary).where(Article.title == "Queued 3"))
    assert summary == "Body of article 3, long enough to summarise."


def queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.llen("celery")
    finally:
        client.close()


def test_a_redis_that_loses_the_intake_task_loses_no_article(app, environment, tmp_path_factory):
    own_redis = RedisServer(tmp_path_factory.mktemp("queue-redis"))
    own_redis.start()
    isolated = create_app(load_settings(environ={**environment, "MAILER_REDIS_URL": own_redis.url}))
    try:
        post_articles(isolated, 3)  # no worker listens here: the tasks stay queued
        assert queued(own_redis.url) == 3
        own_redis.restart_empty()
        assert queued(own_redis.url) == 0
        assert ready_count(isolated) == 0

        with isolated.app_context():
            # Young articles are left to the task queued for them ...
            assert reconcile()["articles_requeued"] == 0
            db.session.execute(update(Article).values(created_at=utcnow() - timedelta(minutes=5)))
            db.session.commit()
            # ... older ones are seen in SQL, and the intake is queued again.
            assert reconcile()["articles_requeued"] == 3
            assert queued(own_redis.url) == 1
            assert intake.take_in_waiting() == 3
            assert intake.take_in_waiting() == 0  # twice changes nothing
        assert ready_count(isolated) == 3
    finally:
        isolated.extensions["mailer.platform.db"]["engine"].dispose()
        own_redis.stop()
