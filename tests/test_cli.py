"""The `mailer` command: tokens, digests from the shell."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from mailer import delivery
from mailer.access.api_tokens import authenticate, create_api_token
from mailer.models import Article, Digest, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, make_digest_here, wait_until


def test_create_api_token_prints_the_token_alone_on_its_last_line(app):
    result = app.test_cli_runner().invoke(args=["create-api-token", "website"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("mlr_") and " " not in token
    with app.app_context():
        assert authenticate(token).name == "website"
    again = app.test_cli_runner().invoke(args=["create-api-token", "website"])
    assert again.exit_code != 0
    assert "exists already" in again.output and "--rotate" in again.output


def test_a_token_can_be_rotated_and_a_revoked_name_used_again(app):
    runner = app.test_cli_runner()
    old = runner.invoke(args=["create-api-token", "site"]).output.strip().splitlines()[-1]
    rotated = runner.invoke(args=["create-api-token", "site", "--rotate"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1]
    with app.app_context():
        assert authenticate(old) is None  # the old token stops working at once
        assert authenticate(new).name == "site"
    assert runner.invoke(args=["revoke-api-token", "site"]).exit_code == 0
    again = runner.invoke(args=["create-api-token", "site"])
    assert again.exit_code == 0, again.output  # the README's step 2, run twice
    with app.app_context():
        assert authenticate(again.output.strip().splitlines()[-1]).name == "site"
        assert authenticate(new) is None


def test_no_digest_is_made_without_a_reader_and_the_articles_wait(app, client):
    from mailer.models import Article

    add_article(app, "Waiting", "https://news.example.org/waiting")
    with app.app_context():
        token = create_api_token("site")
    response = client.post("/api/digests", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 409
    assert "No reader" in response.get_json()["error"]
    with app.app_context():
        assert db.session.scalar(select(Digest.id)) is None
        assert db.session.scalar(select(Article.digest_id)) is None  # still waiting


def test_send_digest_from_the_shell(app, worker, outbox):
    runner = app.test_cli_runner()
    with app.app_context():
        db.session.add(
            Subscriber(
                email="cli@example.org", email_key="cli@example.org", status=SubscriberStatus.ACTIVE
            )
        )
        db.session.commit()
    nothing = runner.invoke(args=["send-digest"])
    assert nothing.exit_code != 0
    assert "no new articles" in nothing.output
    with app.app_context():
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
    assert "sending to 1 daily reader (1 article)" in result.output
    outbox.wait_for("cli@example.org")
    with app.app_context():
        assert db.session.scalar(select(Digest.trigger)) == "cli"


@pytest.mark.slow
def test_the_global_send_rate_is_respected_across_batches(
    app, outbox, settings_override, monkeypatch
):
    """MAILER_SEND_RATE_PER_SECOND caps messages per wall-clock second, whoever sends them."""

    settings_override(send_rate_per_second=15, send_batch_size=10)
    add_readers(app, "rate", 40)
    add_article(app, "Rate", "https://news.example.org/rate")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        # This process sends every batch itself (a stale connection may cost a retry).
        wait_until(
            lambda: delivery.send_batch(digest_id) and delivery.digest_progress(digest_id)["done"],
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


def test_send_digest_refuses_when_the_shell_and_the_running_stack_differ(app, settings_override):
    """Settings exported only in the `make run` shell must not half-shape a mail."""
    from mailer.platform import stack_settings

    with app.app_context():
        stack_settings.publish()  # as the running workers do
    settings_override(base_url="http://127.0.0.1:8000", list_name="Another List")
    result = app.test_cli_runner().invoke(args=["send-digest"])
    assert result.exit_code != 0
    assert "MAILER_BASE_URL: the running stack has 'https://news.example.org'" in result.output
    assert "MAILER_LIST_NAME" in result.output
    assert "MAILER_FROM" not in result.output  # only what differs


def test_a_missing_setting_is_one_line_from_the_command_not_a_traceback():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    # Set, but empty: the environment comes before .env, so a .env that `make run` left in
    # this checkout cannot fill it (and this never sends from the checkout's own database).
    env["MAILER_SECRET_KEY"] = ""
    result = subprocess.run(
        [sys.executable, "-c", "from mailer.entrypoints import main; main()", "send-digest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().startswith("mailer: MAILER_SECRET_KEY is not set")
    assert "Traceback" not in result.stderr
