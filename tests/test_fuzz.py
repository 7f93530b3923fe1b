"""Random and hostile requests on every route, logged out and in: never a 500, never slow.

`make fuzz` runs the same cases, ten thousand of them, against a stack started the
way `make run` starts it.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from sqlalchemy import select

from mailer.access.api_tokens import create_api_token
from mailer.mail.tokens import make_confirm_token, make_preferences_token, make_unsubscribe_token
from mailer.models import Editor, Subscriber
from mailer.platform.db import db
from tests.helpers import add_article, add_readers, hidden_fields, reader_link
from tools.fuzzcases import CSRF, Context, cases

CASES = 400


@pytest.fixture
def context(app) -> Context:
    add_readers(app, "fuzz", 2)
    add_article(app, "Fuzz", "https://news.example.org/fuzz")
    with app.app_context():
        ids = [str(i) for i in db.session.scalars(select(Subscriber.id))]
        reader = reader_link(app, int(ids[0]))
        api_token = create_api_token("fuzz")
        tokens = [
            make_confirm_token(*reader),
            make_unsubscribe_token(*reader),
            make_preferences_token(*reader),
        ]
    return Context(tokens=tokens, ids=[*ids, "1"], csrf_token=CSRF, api_token=api_token)


def csrf_of(client, path: str) -> str:
    return hidden_fields(client.get(path).get_data(as_text=True)).get("csrf_token", "")


def log_in_again(client, editor_id: int) -> None:
    from mailer.web.editor import open_session

    with client.application.app_context():
        epoch = db.session.get_one(Editor, editor_id).session_epoch
    with client.session_transaction() as store:
        open_session(store, editor_id, epoch)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_request_gives_a_server_error_or_takes_long(
    app, client, console, console_editor, context, seed
):
    visitor = app.test_client()
    tokens = {
        id(visitor): csrf_of(visitor, "/subscribe"),
        id(console): csrf_of(console, "/editor/"),
    }
    statuses: Counter[int] = Counter()
    for case in cases(app, context, seed=seed, count=CASES // 2):
        sender = console if case.logged_in else visitor
        token = tokens[id(sender)]
        headers = {k: v.replace(CSRF, token) for k, v in case.headers.items()}
        began = time.monotonic()
        response = sender.open(
            case.path,
            method=case.method,
            headers=headers,
            data=case.body.replace(CSRF.encode(), token.encode()),
        )
        response.get_data()  # a streamed answer (the CSV export) runs to its end
        response.close()
        elapsed = time.monotonic() - began
        statuses[response.status_code] += 1
        assert response.status_code < 500, case.describe()
        assert elapsed < 2, (elapsed, case.describe())
        if sender is console and case.path.startswith("/editor/logout"):
            log_in_again(console, console_editor[2])  # the case ended the session
            tokens[id(console)] = csrf_of(console, "/editor/")
    # The cases reach the views, not only the edges: plenty of answers besides 400.
    assert sum(n for status, n in statuses.items() if status not in {400, 404}) > CASES // 10
