"""The signup box on the site's own pages: a plain form posted from a listed origin."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from mailer.models import Subscriber
from mailer.platform.db import db
from tests.helpers import hidden_fields

SITE = "https://news.example.com"


@pytest.fixture
def listed(settings_override):
    settings_override(embed_origins=(SITE,), signup_min_seconds=30)


def count(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Subscriber)).all())


def test_a_form_on_a_listed_site_works_without_session_or_csrf_token(app, listed):
    browser = app.test_client(use_cookies=False)
    response = browser.post(
        "/subscribe",
        data={"email": "reader@example.org", "name": "Ada", "website": ""},
        headers={"Origin": SITE, "Referer": f"{SITE}/politics/2026/budget"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Check your inbox" in page
    assert f'href="{SITE}/politics/2026/budget"' in page  # back to the article
    with app.app_context():
        row = db.session.scalars(select(Subscriber)).one()
    assert row.status == "pending" and row.consent_source == "embed:news.example.com"


def test_the_referer_stands_in_for_a_missing_origin(app, listed):
    response = app.test_client(use_cookies=False).post(
        "/subscribe",
        data={"email": "old-browser@example.org", "website": ""},
        headers={"Referer": f"{SITE}/a"},
    )
    assert "Check your inbox" in response.get_data(as_text=True)
    assert count(app) == 1


def test_a_form_on_a_site_not_listed_gets_a_403_and_changes_nothing(app, listed):
    response = app.test_client(use_cookies=False).post(
        "/subscribe",
        data={"email": "victim@example.org", "website": ""},
        headers={"Origin": "https://evil.example", "Referer": "https://evil.example/x"},
    )
    assert response.status_code == 403
    assert "may only be sent from" in response.get_data(as_text=True)
    assert count(app) == 0


def test_without_an_origin_the_csrf_token_is_still_required(app, listed):
    response = app.test_client(use_cookies=False).post(
        "/subscribe", data={"email": "nobody@example.org"}
    )
    assert response.status_code == 400
    assert count(app) == 0


def test_the_embedded_honeypot_still_catches_bots(app, listed):
    response = app.test_client(use_cookies=False).post(
        "/subscribe",
        data={"email": "bot@example.org", "website": "https://spam.example"},
        headers={"Origin": SITE},
    )
    assert "Check your inbox" in response.get_data(as_text=True)
    assert count(app) == 0


def test_a_listed_sites_script_may_read_the_answer_and_nobody_elses(app, listed):
    browser = app.test_client(use_cookies=False)
    answer = browser.post(
        "/subscribe",
        data={"email": "script@example.org", "website": ""},
        headers={"Origin": SITE, "Accept": "application/json"},
    )
    assert answer.status_code == 202
    assert answer.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in answer.headers["Vary"]
    refused = browser.post(
        "/subscribe",
        data={"email": "x@example.org", "website": ""},
        headers={"Origin": "https://evil.example", "Accept": "application/json"},
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_the_embedded_form_is_still_rate_limited(app, listed, settings_override):
    settings_override(signup_rate_limit_address="2 per hour")
    browser = app.test_client(use_cookies=False)
    statuses = [
        browser.post(
            "/subscribe",
            data={"email": "target@example.org", "website": ""},
            headers={"Origin": SITE},
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_the_console_shows_the_snippet_to_paste(app, console, listed):
    page = html.unescape(console.get("/editor/signup-form").get_data(as_text=True))
    assert 'action="https://news.example.org/subscribe"' in page  # MAILER_BASE_URL
    assert 'name="website"' in page  # the honeypot is part of the snippet
    assert "fetch(" in page  # the JavaScript variant
    assert SITE in page
    assert hidden_fields(page)["csrf_token"]
