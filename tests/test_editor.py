"""The editor's console: access control, login, articles, preview, test send, send, progress."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.access.editors import create_editor
from mailer.models import Article, Delivery, Digest
from mailer.platform.db import db
from tests.conftest import EDITOR_PASSWORD as PASSWORD
from tests.helpers import (
    add_article,
    add_readers,
    hidden_fields,
    link_path,
    text_body,
    wait_until,
)


@pytest.fixture
def editor(app) -> str:
    with app.app_context():
        create_editor("Editor@Example.org", PASSWORD)
    return "editor@example.org"


def log_in(client, email: str, password: str = PASSWORD, **extra: str):
    fields = hidden_fields(client.get("/editor/login").get_data(as_text=True))
    return client.post(
        "/editor/login", data={**fields, "email": email, "password": password, **extra}
    )


def csrf(client, path: str = "/editor/") -> str:
    return hidden_fields(client.get(path).get_data(as_text=True))["csrf_token"]


def test_every_console_route_needs_a_login(app, client):
    token = hidden_fields(client.get("/editor/login").get_data(as_text=True))["csrf_token"]
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("editor.") or rule.endpoint.startswith("editor.login"):
            continue
        path = rule.build({k: 1 for k in rule.arguments})[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method, data={"csrf_token": token})
            if method == "GET" and not path.endswith(".json"):
                assert response.status_code == 302, path
                assert response.headers["Location"].startswith("/editor/login"), path
            else:
                assert response.status_code in {401, 403}, (method, path, response.status_code)
            checked += 1
    assert checked >= 12


def test_wrong_email_and_wrong_password_get_the_same_answer(client, editor):
    wrong_password = log_in(client, editor, "not the password")
    unknown_email = log_in(client, "nobody@example.org")
    assert wrong_password.status_code == unknown_email.status_code == 401
    strip = lambda r: r.get_data(as_text=True).split('name="csrf_token"')[0]  # noqa: E731
    assert strip(wrong_password) == strip(unknown_email)
    assert "do not match" in wrong_password.get_data(as_text=True)
    assert client.get("/editor/").status_code == 302  # still logged out


def test_login_sets_a_safe_session_cookie_and_never_redirects_off_site(client, editor):
    response = log_in(client, editor, next="https://evil.example/phish")
    assert response.status_code == 302
    assert response.headers["Location"] == "/editor/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/editor/").status_code == 200


def test_login_needs_its_csrf_token(client, editor):
    response = client.post("/editor/login", data={"email": editor, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/editor/").status_code == 302


@pytest.mark.slow  # a dozen Argon2 checks
def test_logins_are_rate_limited(client, editor):
    for _ in range(10):
        assert log_in(client, editor, "wrong password").status_code == 401
    blocked = log_in(client, editor)  # even the right password, for now
    assert blocked.status_code == 429


def from_ip(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.mark.slow  # a dozen Argon2 checks
def test_failures_elsewhere_never_lock_the_real_editor_out(app, editor):
    for n in range(10):
        attacker = from_ip(app, f"203.0.113.{n}")
        assert log_in(attacker, editor, "wrong password").status_code == 401
    editor_at_home = from_ip(app, "198.51.100.7")
    assert log_in(editor_at_home, editor).status_code == 302
    assert editor_at_home.get("/editor/").status_code == 200


@pytest.mark.slow  # a dozen Argon2 checks
def test_successful_logins_do_not_count_against_the_limit(app, editor):
    for _ in range(11):  # one more than failures may count
        assert log_in(from_ip(app, "198.51.100.8"), editor).status_code == 302


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client, editor):
    assert log_in(client, editor).status_code == 302
    cookie = client.get_cookie("mailer_session")
    thief = app.test_client()
    thief.set_cookie("mailer_session", cookie.value)
    assert thief.get("/editor/").status_code == 200  # the copy works while the session lives
    client.post("/editor/logout", data={"csrf_token": csrf(client)})
    assert client.get("/editor/").status_code == 302
    assert thief.get("/editor/").status_code == 302
    assert log_in(client, editor).status_code == 302  # a new login works again
    assert client.get("/editor/").status_code == 200


def test_adding_and_removing_articles_by_hand(app, console):
    response = console.post(
        "/editor/articles",
        data={"csrf_token": csrf(console), "title": "By hand", "url": "https://news.example.org/h"},
        follow_redirects=True,
    )
    assert "Article added." in response.get_data(as_text=True)
    assert "By hand" in console.get("/editor/articles").get_data(as_text=True)
    bad = console.post(
        "/editor/articles",
        data={"csrf_token": csrf(console), "title": "Bad", "url": "ftp://x"},
        follow_redirects=True,
    )
    assert "absolute http" in bad.get_data(as_text=True)
    with app.app_context():
        article_id = db.session.scalar(select(Article.id))
    removed = console.post(
        f"/editor/articles/{article_id}/remove",
        data={"csrf_token": csrf(console)},
        follow_redirects=True,
    )
    assert "Removed from the next digest." in removed.get_data(as_text=True)
    assert "No articles are waiting." in console.get("/editor/articles").get_data(as_text=True)


def add_readers_and_article(app, readers: int) -> None:
    add_readers(app, "console", readers)
    add_article(
        app, "Console story", "https://news.example.org/c", summary="What the console shows."
    )


def test_preview_and_test_send_touch_no_reader(app, console, worker, outbox):
    add_readers_and_article(app, 3)
    page = console.get("/editor/digest").get_data(as_text=True)
    assert "Console story" in page
    assert "Send to 3 daily readers" in page
    preview = console.get("/editor/digest/preview.html").get_data(as_text=True)
    assert "What the console shows." in preview
    response = console.post(
        "/editor/digest/test",
        data={"csrf_token": csrf(console, "/editor/digest"), "email": "desk@example.org"},
        follow_redirects=True,
    )
    assert "on its way to desk@example.org" in response.get_data(as_text=True)
    [mail] = outbox.wait_for("desk@example.org")
    assert str(mail["Subject"]).startswith("[TEST] ")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert outbox.count() == 1
    # The reader's mail, headers included; not a reader, so its link says it was a test.
    assert mail["List-Id"] == "Example News <digest.news.example.org>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/test>")
    link = link_path(text_body(mail), "/unsubscribe/")
    assert link == "/unsubscribe/test"
    for method in (console.get, console.post):
        page = method(link).get_data(as_text=True)
        assert "This was a test copy" in page


def test_a_test_sent_to_a_readers_address_carries_their_working_link(app, console, worker, outbox):
    add_readers_and_article(app, 1)  # console0@example.org
    console.post(
        "/editor/digest/test",
        data={"csrf_token": csrf(console, "/editor/digest"), "email": "console0@example.org"},
    )
    [mail] = outbox.wait_for("console0@example.org")
    assert str(mail["Subject"]).startswith("[TEST] ")
    path = link_path(text_body(mail), "/unsubscribe/")
    assert path in mail["List-Unsubscribe"]
    assert "Unsubscribe from Example News?" in console.get(path).get_data(as_text=True)


def test_send_to_n_readers_then_watch_it_finish(app, console, worker, outbox):
    add_readers_and_article(app, 5)
    token = csrf(console, "/editor/digest")
    stale = console.post(
        "/editor/digest/send", data={"csrf_token": token, "readers": "4"}, follow_redirects=True
    )
    assert "it is now 5" in stale.get_data(as_text=True)
    response = console.post("/editor/digest/send", data={"csrf_token": token, "readers": "5"})
    assert response.status_code == 302
    digest_page = response.headers["Location"]
    # A second press (double click, another tab) makes no second digest.
    again = console.post(
        "/editor/digest/send", data={"csrf_token": token, "readers": "5"}, follow_redirects=True
    )
    assert "no new articles" in again.get_data(as_text=True) or "being sent" in again.get_data(
        as_text=True
    )
    assert "progressbar" in console.get(digest_page).get_data(as_text=True)
    done = wait_until(
        lambda: (p := console.get(digest_page + "/progress.json").get_json())["done"] and p,
        timeout=30,
        message="the digest did not finish",
    )
    assert done["sent"] == 5 and done["status"] == "sent"
    assert outbox.count() == 5
    history = console.get("/editor/digests").get_data(as_text=True)
    assert "Console story" in history
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 1


def test_create_editor_from_the_shell(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-editor", "desk@example.org", "--password-stdin"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    short = runner.invoke(
        args=["create-editor", "other@example.org", "--password-stdin"], input="short\n"
    )
    assert short.exit_code != 0
    assert "at least 10 characters" in short.output
    client = app.test_client()
    assert log_in(client, "desk@example.org", "a long enough password").status_code == 302
