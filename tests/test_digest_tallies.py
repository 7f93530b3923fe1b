"""A finished digest's tallies are written on its row: History and the dashboard read no
delivery row, so they cost the same at a hundred readers and at a million."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from mailer import delivery
from mailer.models import Digest
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, make_digest_here

pytestmark = pytest.mark.integration


def finished_digest(app, monkeypatch, outbox) -> int:
    emails = add_readers(app, "tally", 5)
    outbox.refuse(emails[0], "550 5.1.1 No such mailbox")
    add_article(app, "Tallied", "https://news.example.org/tallied")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        delivery.send_batch(digest_id)
        assert delivery.finish_if_done(digest_id) is False  # finished by the batch already
    return digest_id


def test_a_finished_digest_keeps_its_tallies_on_its_row(app, monkeypatch, outbox):
    digest_id = finished_digest(app, monkeypatch, outbox)
    with app.app_context():
        digest = db.session.get_one(Digest, digest_id)
        counted = delivery.status_counts(digest_id)
        progress = delivery.digest_progress(digest_id)
    assert (digest.sent_count, digest.failed_count, digest.unknown_count) == (4, 1, 0)
    assert digest.skipped_count == 0
    assert (progress["sent"], progress["failed"]) == (counted["sent"], counted["failed"])


def statements_during(app, action) -> list[str]:
    seen: list[str] = []
    engine = app.extensions["mailer.platform.db"]["engine"]

    def note(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


@pytest.mark.parametrize("page", ["/editor/digests", "/editor/"])
def test_history_and_the_dashboard_read_no_delivery_rows(app, console, monkeypatch, outbox, page):
    finished_digest(app, monkeypatch, outbox)

    def visit():
        response = console.get(page)
        assert response.status_code == 200
        assert "Tallied" in response.get_data(as_text=True)

    statements = statements_during(app, visit)
    assert statements, "the page made no query at all: the listener saw nothing"
    assert not [s for s in statements if "deliveries" in s]
