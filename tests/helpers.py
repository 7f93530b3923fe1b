"""Small helpers for tests: waiting with a deadline and reading pages and mails."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from email.message import EmailMessage


def wait_until(
    condition: Callable[[], object], *, timeout: float = 10, message: str = "condition not met"
) -> object:
    """Polls `condition` until it is truthy; fails with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout}s)")
        time.sleep(0.05)


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of a page's forms, by name."""
    fields = {}
    for tag in re.findall(r"<input[^>]*type=\"hidden\"[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return fields


def text_body(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_body(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_path(body: str, prefix: str) -> str:
    """The path of the first https://news.example.org<prefix>... link in a mail body."""
    match = re.search(
        r"https://news\.example\.org(" + re.escape(prefix) + r"[A-Za-z0-9._\-]+)", body
    )
    assert match, f"no {prefix} link in:\n{body}"
    return match.group(1)


def signup(client, email: str, name: str = "", **extra: str):
    """Fills in the signup form the way a browser would: GET, then POST its fields."""
    page = client.get("/subscribe").get_data(as_text=True)
    data = {**hidden_fields(page), "email": email, "name": name, "website": "", **extra}
    return client.post("/subscribe", data=data)


def csrf_token(client, path: str = "/subscribe") -> str:
    return hidden_fields(client.get(path).get_data(as_text=True))["csrf_token"]


def add_readers(app, prefix: str, count: int, status=None) -> list[str]:
    """`count` readers (active unless told otherwise), inserted in one statement."""
    from sqlalchemy import insert

    from mailer.models import Subscriber, SubscriberStatus
    from mailer.platform.db import db

    emails = [f"{prefix}{n}@example.org" for n in range(count)]
    with app.app_context():
        db.session.execute(
            insert(Subscriber),
            [
                {"email": e, "email_key": e, "status": status or SubscriberStatus.ACTIVE}
                for e in emails
            ],
        )
        db.session.commit()
    return emails


def add_choosing_readers(app, readers: dict) -> None:
    """Active readers with their choice: {address: (sections key or None, Frequency)}."""
    from mailer.models import Subscriber, SubscriberStatus
    from mailer.platform.db import db

    with app.app_context():
        for email, (sections, frequency) in readers.items():
            db.session.add(
                Subscriber(
                    email=email,
                    email_key=email,
                    status=SubscriberStatus.ACTIVE,
                    sections=sections,
                    frequency=frequency,
                )
            )
        db.session.commit()


def reader_link(app, subscriber_id: int) -> tuple[int, str]:
    """(id, link key): what a reader's links are made of."""
    from mailer.models import Subscriber
    from mailer.platform.db import db

    with app.app_context():
        return subscriber_id, db.session.get_one(Subscriber, subscriber_id).link_key


def add_article(app, title: str, url: str, **fields: object) -> None:
    """An article already taken in from the queue, waiting for the next digest."""
    from mailer.models import Article, utcnow
    from mailer.platform.db import db

    with app.app_context():
        db.session.add(Article(title=title, url=url, source="test", ready_at=utcnow(), **fields))
        db.session.commit()


def make_digest_here(app, monkeypatch, **options) -> int:
    """Makes a digest and all its delivery rows in this process, queueing no task: the test
    then sends its batches itself (delivery.send_batch), with no worker racing it."""
    from mailer import delivery
    from mailer.digests import runs as digests
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)
    monkeypatch.setattr(jobs, "enqueue_in", lambda *args: True)
    with app.app_context():
        digest_id = digests.create_digest(trigger=options.pop("trigger", "test"), **options)
        delivery.materialize_digest(digest_id)
    return digest_id


def queued_tasks(app) -> list[str]:
    """Names of the tasks waiting on the broker's default queue (kombu's JSON envelope)."""
    import json

    from mailer.platform.redis_client import redis_client

    with app.app_context():
        raw = redis_client().lrange("celery", 0, -1)
    return [json.loads(message)["headers"]["task"] for message in raw]
