"""A digest's one state column: each transition from where it may start, and nowhere else."""

from __future__ import annotations

import pytest

from mailer import delivery
from mailer.delivery import controls
from mailer.delivery.claims import halt_status
from mailer.digests.runs import AlreadySending, NothingToSend
from mailer.models import DeliveryStatus, Digest, DigestStatus
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, make_digest_here

pytestmark = pytest.mark.integration


def state(app, digest_id: int) -> DigestStatus:
    with app.app_context():
        return db.session.get_one(Digest, digest_id).status


@pytest.fixture
def digest_id(app, monkeypatch):
    add_readers(app, "state", 3)
    add_article(app, "States", "https://news.example.org/states")
    return make_digest_here(app, monkeypatch)


def test_pause_resume_and_cancel_move_the_one_column(app, digest_id):
    with app.app_context():
        controls.pause_digest(digest_id)
        controls.pause_digest(digest_id)  # a second press is harmless
    assert state(app, digest_id) == DigestStatus.PAUSED
    with app.app_context():
        assert halt_status(digest_id) == DeliveryStatus.PENDING  # batches leave rows owed
        controls.resume_digest(digest_id)
    assert state(app, digest_id) == DigestStatus.SENDING
    with app.app_context():
        controls.cancel_digest(digest_id)  # nothing on the wire: it ends at once
        progress = delivery.digest_progress(digest_id)
    assert state(app, digest_id) == DigestStatus.CANCELLED
    assert progress["status"] == "cancelled" and progress["skipped"] == 3


def test_a_finished_digest_is_neither_paused_resumed_nor_cancelled(app, digest_id):
    with app.app_context():
        delivery.send_batch(digest_id)
    assert state(app, digest_id) == DigestStatus.SENT
    for control in (controls.pause_digest, controls.resume_digest, controls.cancel_digest):
        with app.app_context(), pytest.raises(controls.NotSending):
            control(digest_id)
    assert state(app, digest_id) == DigestStatus.SENT


def test_a_cancelling_digest_cannot_be_resumed_and_a_cancelled_one_is_never_retried(app, digest_id):
    with app.app_context():
        controls.pause_digest(digest_id)
        controls.cancel_digest(digest_id)
        with pytest.raises(controls.NotSending):
            controls.resume_digest(digest_id)
        with pytest.raises((NothingToSend, AlreadySending)):
            controls.retry_failed(digest_id)
    assert state(app, digest_id) == DigestStatus.CANCELLED
