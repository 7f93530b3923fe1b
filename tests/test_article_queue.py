"""Accepted articles go through the Redis queue; a Redis that loses it loses no article."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from mailer import create_app
from mailer.access.api_tokens import create_api_token
from mailer.content import article_queue
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
def test_the_intake_worker_takes_articles_off_the_queue(app, worker):
    post_articles(app, 25)
    wait_until(lambda: ready_count(app) == 25, timeout=20, message="articles were not taken in")
    client = redis.Redis.from_url(app.config["MAILER"].redis_url)
    wait_until(lambda: client.xlen(article_queue.STREAM) == 0, message="the stream was not emptied")
    pending = client.xpending(article_queue.STREAM, article_queue.GROUP)
    assert pending["pending"] == 0
    with app.app_context():
        summary = db.session.scalar(select(Article.summary).where(Article.title == "Queued 3"))
    assert summary == "Body of article 3, long enough to summarise."


def test_a_redis_that_loses_the_queue_loses_no_article(app, environment, tmp_path_factory):
    own_redis = RedisServer(tmp_path_factory.mktemp("queue-redis"))
    own_redis.start()
    isolated = create_app(load_settings(environ={**environment, "MAILER_REDIS_URL": own_redis.url}))
    try:
        post_articles(isolated, 3)  # no worker listens here: they stay queued
        client = redis.Redis.from_url(own_redis.url)
        assert client.xlen(article_queue.STREAM) == 3
        own_redis.restart_empty()
        assert client.xlen(article_queue.STREAM) == 0
        assert ready_count(isolated) == 0

        with isolated.app_context():
            # Young articles are left to their own queue entry ...
            assert reconcile()["articles_requeued"] == 0
            db.session.execute(update(Article).values(created_at=utcnow() - timedelta(minutes=5)))
            db.session.commit()
            # ... older ones are queued again from SQL.
            assert reconcile()["articles_requeued"] == 3
            assert client.xlen(article_queue.STREAM) == 3
            assert article_queue.drain("test-consumer") == 3
        assert ready_count(isolated) == 3
        assert client.xlen(article_queue.STREAM) == 0
    finally:
        isolated.extensions["mailer.platform.db"]["engine"].dispose()
        own_redis.stop()
