"""The `mailer` command: tokens, digests from the shell."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from mailer import delivery
from mailer.api_tokens import authenticate
from mailer.db import db
from mailer.models import Article, Digest, Subscriber, SubscriberStatus, utcnow
from tests.helpers import add_article, add_readers, wait_until


def test_create_api_token_prints_the_token_alone_on_its_last_line(app):
    result = app.test_cli_runner().invoke(args=["create-api-token", "website"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("mlr_") and " " not in token
    with app.app_context():
        assert authenticate(token).name == "website"
    again = app.test_cli_runner().invoke(args=["create-api-token", "website"])
    assert again.exit_code != 0
    assert "exists already" in again.output


def test_send_digest_from_the_shell(app, worker, outbox):
    runner = app.test_cli_runner()
    nothing = runner.invoke(args=["send-digest"])
    assert nothing.exit_code != 0
    assert "no new articles" in nothing.output
    with app.app_context():
        db.session.add(
            Subscriber(
                email="cli@example.org", email_key="cli@example.org", status=SubscriberStatus.ACTIVE
            )
        )
        db.session.add(
            Article(
                title="From the shell",
                url="https://news.example.org/cli",
                source="test",
                ready_at=utcnow(),
            )
        )
        db.session.commit()
    result = runner.invoke(args=["send-digest"])
    assert result.exit_code == 0, result.output
    assert "sending to 1 readers" in result.output
    outbox.wait_for("cli@example.org")
    with app.app_context():
        assert db.session.scalar(select(Digest.trigger)) == "cli"


@pytest.mark.slow
def test_the_global_send_rate_is_respected_across_batches(
    app, outbox, settings_override, monkeypatch
):
    """MAILER_SEND_RATE_PER_SECOND caps messages per wall-clock second, whoever sends them."""
    from mailer import digests

    settings_override(send_rate_per_second=15, send_batch_size=10)
    add_readers(app, "rate", 40)
    add_article(app, "Rate", "https://news.example.org/rate")
    with app.app_context():
        monkeypatch.setattr(delivery, "enqueue_batches", lambda digest_id, rows: None)
        digest_id = digests.create_digest(trigger="test")
        # This process sends every batch itself (a stale connection may cost a retry).
        wait_until(
            lambda: (
                delivery.send_batch(digest_id)
                and digests.progress(digest_id)["status"] != "sending"
            ),
            timeout=30,
            message="the digest did not finish",
        )
    assert outbox.count() == 40
    # The limiter counts per second where the message is sent; arrival a moment later
    # can shift a message into the next second, hence the small slack.
    per_second = Counter(int(t) for t in outbox.arrivals)
    assert max(per_second.values()) <= 15 + 2
    # 40 messages at 15 a second span at least two second boundaries, so more than a
    # second passes between the first and the last, less delivery jitter (without the
    # limit it is a tenth of that).
    assert outbox.arrivals[-1] - outbox.arrivals[0] > 0.9
