"""Inputs an outside fuzz run found giving a 500: each now gets a clear 4xx and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.access.api_tokens import create_api_token
from mailer.models import Article, Subscriber
from mailer.platform.db import db
from tests.helpers import csrf_token, hidden_fields

DEEP_JSON = "[" * 30_000 + "]" * 30_000  # under the 64 KB a form may send
DEEP_OBJECT = '{"a":' * 5_000 + "1" + "}" * 5_000


@pytest.fixture
def api(app):
    with app.app_context():
        token = create_api_token("hostile")
    return {"Authorization": f"Bearer {token}"}


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT])
def test_deeply_nested_json_is_a_400(app, client, api, body):
    headers = {"Content-Type": "application/json"}
    signup = client.post(
        "/subscribe", data=body, headers={**headers, "X-CSRFToken": csrf_token(client)}
    )
    assert signup.status_code == 400
    article = client.post("/api/articles", data=body, headers={**headers, **api})
    assert article.status_code == 400
    assert "error" in article.get_json()
    assert count(app, Subscriber) == count(app, Article) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/digests/99999999999999999999999999",
        "/api/digests/9223372036854775808",
        "/api/digests/2147483648",
    ],
)
def test_an_id_too_large_for_the_database_is_a_404(client, api, path):
    response = client.get(path, headers=api)
    assert response.status_code == 404


@pytest.mark.parametrize("page", ["99999999999999999999999", "-5", "0", "abc"])
def test_page_numbers_are_bounded(console, page):
    for path in ("/editor/subscribers", "/editor/digests/1"):
        response = console.get(f"{path}?page={page}")
        assert response.status_code in {200, 404}, (path, response.status_code)


def test_editor_paths_with_huge_ids_are_404(console):
    for path in (
        "/editor/subscribers/99999999999999999999",
        "/editor/digests/99999999999999999999",
        "/editor/subscribers/imports/99999999999999999999",
    ):
        assert console.get(path).status_code == 404, path


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udfffb"', '"nul\\u0000"'])
def test_lone_surrogates_and_nul_in_json_strings_are_a_400(app, client, api, text):
    signup = client.post(
        "/subscribe",
        data='{"email": "a@example.org", "name": ' + text + "}",
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf_token(client)},
    )
    assert signup.status_code == 400
    article = client.post(
        "/api/articles",
        data='{"title": '
        + text
        + ', "url": "https://news.example.org/s", "summary": '
        + text
        + "}",
        headers={"Content-Type": "application/json", **api},
    )
    assert article.status_code == 400
    assert count(app, Subscriber) == count(app, Article) == 0


NAMELESS_PART = b"--frontier\r\nContent-Disposition: form-data\r\n\r\nhello\r\n--frontier--\r\n"


@pytest.mark.parametrize("path", ["/subscribe", "/confirm/abc", "/editor/login"])
def test_a_multipart_part_without_a_name_is_a_400(client, path):
    response = client.post(
        path,
        data=NAMELESS_PART,
        headers={"Content-Type": "multipart/form-data; boundary=frontier"},
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://[::1"}, "url"),
        ({"published_at": "0001-01-01T00:00:00+14:00"}, "published_at"),
        ({"published_at": "9999-12-31T23:59:59-14:00"}, "published_at"),
        ({"summary": "nul \x00 byte"}, "summary"),
        ({"body_html": "<p>nul \x00 byte</p>"}, "body_html"),
    ],
)
def test_articles_that_broke_the_api_are_refused(app, client, api, fields, message):
    body = {"title": "T", "url": "https://news.example.org/t", **fields}
    response = client.post("/api/articles", json=body, headers=api)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert count(app, Article) == 0


def test_a_login_next_with_a_line_break_is_not_a_500(client, console_editor):
    fields = hidden_fields(client.get("/editor/login").get_data(as_text=True))
    response = client.post(
        "/editor/login",
        data={
            **fields,
            "email": console_editor[0],
            "password": console_editor[1],
            "next": "/editor/\r\nSet-Cookie: x=1",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/editor/"


def upload(console, content: bytes):
    from werkzeug.datastructures import FileStorage

    token = hidden_fields(console.get("/editor/subscribers/import").get_data(as_text=True))
    return console.post(
        "/editor/subscribers/import",
        data={
            **token,
            "file": FileStorage(stream=__import__("io").BytesIO(content), filename="r.csv"),
        },
        content_type="multipart/form-data",
    )


def test_a_csv_with_a_200_kb_header_is_refused_with_a_message(app, console):
    response = upload(console, b"email," + b"x" * 200_000 + b"\na@example.org,b\n")
    assert response.status_code == 400
    assert "not a CSV header" in response.get_data(as_text=True)


def test_a_huge_field_or_an_impossible_time_is_an_invalid_row_not_a_stuck_import(
    app, console, worker
):
    from tests.helpers import wait_until

    content = (
        "email,name,status,consented_at\n"
        f"huge@example.org,{'N' * 200_000},active,\n"
        "early@example.org,E,active,0001-01-01T00:00:00+14:00\n"
        "fine@example.org,F,active,2026-01-01T00:00:00Z\n"
    ).encode()
    response = upload(console, content)
    assert response.status_code == 302
    state_url = response.headers["Location"] + "/state.json"
    state = wait_until(
        lambda: (s := console.get(state_url).get_json())["status"] != "checking" and s,
        timeout=20,
        message="the check did not finish",
    )
    assert state["status"] == "previewed"
    assert state["total_rows"] == 1
    assert state["summary"]["invalid"] == 2
    messages = " ".join(message for _line, message in state["summary"]["errors"])
    assert "longer than" in messages and "consented_at" in messages


def test_deeply_nested_article_html_is_refused_before_the_sanitizer_sees_it(app, client, api):
    import time

    body = {
        "title": "Deep",
        "url": "https://news.example.org/deep",
        "body_html": "<div>" * 99_000 + "x",  # 495 KB, under the size limit
    }
    began = time.monotonic()
    response = client.post("/api/articles", json=body, headers=api)
    assert response.status_code == 400
    assert "deep" in response.get_json()["error"]
    assert time.monotonic() - began < 2
    assert count(app, Article) == 0


def test_self_closing_tags_count_as_the_parser_nests_them(app, client, api):
    import time

    from mailer.content.summaries import MAX_HTML_DEPTH, html_depth

    assert html_depth("<br/><img src=x /><hr/>") == 0  # void: nothing opens
    assert html_depth("<div/>" * (MAX_HTML_DEPTH + 1)) == MAX_HTML_DEPTH + 1
    body = {
        "title": "Flat?",
        "url": "https://news.example.org/flat",
        "body_html": "<div/>" * 80_000,
    }
    began = time.monotonic()
    response = client.post("/api/articles", json=body, headers=api)
    assert response.status_code == 400 and "deep" in response.get_json()["error"]
    assert time.monotonic() - began < 2
    assert count(app, Article) == 0


def test_ordinary_html_with_many_paragraphs_is_not_deep():
    from mailer.content.summaries import MAX_HTML_DEPTH, html_depth, html_to_text

    assert html_depth("<p>one<p>two<ul><li>a<li>b</ul><br><img src=x>") == 1
    assert html_depth("<p>x" * 5_000) == 0
    deep = "<span>" * (MAX_HTML_DEPTH + 1) + "words" + "</span>" * (MAX_HTML_DEPTH + 1)
    assert html_depth(deep) == MAX_HTML_DEPTH + 1
    assert html_to_text(deep) == "words"  # tags dropped without a parser, text kept


def test_the_export_never_hands_a_spreadsheet_a_formula(app, console):
    from mailer.models import SubscriberStatus

    names = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@SUM(A1)", "\tTab", "Ada"]
    with app.app_context():
        for n, name in enumerate(names):
            db.session.add(
                Subscriber(
                    email=f"r{n}@example.org",
                    email_key=f"r{n}@example.org",
                    name=name,
                    status=SubscriberStatus.ACTIVE,
                )
            )
        db.session.commit()
    import csv
    import io

    rows = list(csv.reader(io.StringIO(console.get("/editor/subscribers/export.csv").text)))
    exported = [row[1] for row in rows[1:]]
    assert exported == ["'" + name for name in names[:-1]] + ["Ada"]
    for cell in (c for row in rows for c in row):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_an_exported_file_imports_back_to_the_same_names():
    from mailer.subscribers.records import from_spreadsheet, spreadsheet_safe

    for name in ["=1+1", "-dash", "Ada", "'quoted", "@at"]:
        assert from_spreadsheet(spreadsheet_safe(name)) == name


def test_an_idn_domain_is_sent_to_its_idna_2008_form(client, worker, outbox):
    from tests.helpers import signup

    assert signup(client, "reader@faß.de").status_code == 200
    [message] = outbox.wait_for("reader@xn--fa-hia.de")
    assert outbox.envelopes[-1][1] == ["reader@xn--fa-hia.de"]
    assert message["To"] == "reader@xn--fa-hia.de"


def test_a_digest_triggered_by_a_long_token_name_is_made(app, client, worker):
    """The trigger ("api:<name>") once overflowed a 40-character column on PostgreSQL."""
    from tests.helpers import add_article, add_readers

    add_readers(app, "long", 1)
    add_article(app, "Long", "https://news.example.org/long")
    with app.app_context():
        token = create_api_token("n" * 100)
    response = client.post("/api/digests", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202
    with app.app_context():
        from mailer.models import Digest

        assert db.session.scalar(select(Digest.trigger)) == "api:" + "n" * 100
