"""One unit of work per request, task or command: domain steps compose, roll back together,
and jobs are queued only once the unit has committed."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import func, select

from mailer.content import articles
from mailer.mail import addresses
from mailer.mail.tokens import make_confirm_token
from mailer.models import Article, Subscriber
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.subscribers import subscriptions
from tests.helpers import hidden_fields, signup

pytestmark = pytest.mark.integration


class Interrupted(Exception):
    pass


def counts(app) -> tuple[int, int]:
    with app.app_context():
        return (
            db.count(select(func.count()).select_from(Subscriber)),
            db.count(select(func.count()).select_from(Article)),
        )


def two_domain_calls() -> None:
    address = addresses.normalize_address("composed@example.org")
    subscriptions.request_subscription(address, None, source="test")
    articles.accept_article(
        articles.ArticleInput(title="Composed", url="https://news.example.org/composed"),
        source="test",
    )


def test_two_domain_calls_in_one_unit_of_work_roll_back_together(app):
    with app.app_context(), pytest.raises(Interrupted), db.unit_of_work():
        two_domain_calls()
        # Both steps ran and flushed: the unit sees their rows...
        assert db.count(select(func.count()).select_from(Subscriber)) == 1
        assert db.count(select(func.count()).select_from(Article)) == 1
        raise Interrupted
    assert counts(app) == (0, 0)  # ...and neither outlives the unit.


def test_two_domain_calls_in_one_unit_of_work_commit_together(app):
    with app.app_context(), db.unit_of_work() as session:
        # An outer write flushed before an inner step used to be rolled back by it.
        session.add(Article(title="Outer", url="https://news.example.org/outer", source="test"))
        session.flush()
        two_domain_calls()
    assert counts(app) == (1, 2)


def test_a_unit_of_work_cannot_be_opened_inside_another(app):
    with app.app_context(), db.unit_of_work(), pytest.raises(RuntimeError):
        db.unit_of_work().__enter__()


def queued(app) -> int:
    """Tasks waiting on the broker's default queue (no worker listens to this app's)."""
    client = redis.Redis.from_url(app.config["MAILER"].redis_url)
    try:
        return client.llen("celery")
    finally:
        client.close()


def test_jobs_are_queued_only_after_the_unit_commits(isolated):
    app, _env = isolated()
    before = queued(app)
    with app.app_context():
        with db.unit_of_work():
            jobs.enqueue(jobs.SEND_TEST, "reader@example.org", "editor@example.org")
            assert queued(app) == before  # not before the commit: it could not see its rows
        assert queued(app) == before + 1


def test_jobs_of_a_unit_that_rolls_back_are_never_queued(isolated):
    app, _env = isolated()
    before = queued(app)
    with app.app_context():
        with pytest.raises(Interrupted), db.unit_of_work():
            jobs.enqueue(jobs.SEND_TEST, "reader@example.org", "editor@example.org")
            raise Interrupted
        assert queued(app) == before


def test_a_request_answered_with_an_error_changes_nothing(app, client, monkeypatch):
    """A view that wrote and then failed leaves no row behind, whatever it flushed."""

    def write_then_refuse(*_args, **_kwargs):
        two_domain_calls()
        raise subscriptions.NotFound("We could not find this subscription.")

    monkeypatch.setattr(subscriptions, "confirm_subscription", write_then_refuse)
    before = counts(app)
    response = signup(client, "first@example.org")
    assert response.status_code == 200
    after_signup = counts(app)
    assert after_signup == (before[0] + 1, before[1])
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        token = make_confirm_token(subscriber.id, subscriber.link_key)
    page = client.get(f"/confirm/{token}").get_data(as_text=True)
    refused = client.post(f"/confirm/{token}", data=hidden_fields(page))
    assert refused.status_code == 404
    assert counts(app) == after_signup
