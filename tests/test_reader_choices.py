"""Readers choose their sections and a frequency: at signup, in an import, in an export."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select

from mailer.models import Frequency, Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.helpers import add_choosing_readers, csrf_token, hidden_fields, signup

SECTIONS = (("politics", "Politics"), ("world", "World news"), ("sport", "Sport"))


@pytest.fixture
def with_sections(settings_override):
    return settings_override(sections=SECTIONS)


def choice_of(app, email: str) -> tuple[str | None, Frequency, SubscriberStatus]:
    with app.app_context():
        reader = db.session.scalars(select(Subscriber).where(Subscriber.email_key == email)).one()
        return reader.sections, reader.frequency, reader.status


def test_the_signup_form_offers_every_section_ticked_and_daily(client, with_sections):
    page = client.get("/subscribe").get_data(as_text=True)
    for slug, name in SECTIONS:
        assert f'name="sections" value="{slug}"\n    checked> {name}' in page
    assert 'value="daily"\n    checked>' in page
    assert 'value="weekly"\n    >' in page


def test_a_reader_who_keeps_every_box_gets_every_section_even_later_ones(
    app, client, with_sections
):
    signup(client, "all@example.org", sections=["politics", "world", "sport"])
    assert choice_of(app, "all@example.org") == (None, Frequency.DAILY, SubscriberStatus.PENDING)


def test_the_form_keeps_the_sections_and_frequency_a_reader_chose(app, client, with_sections):
    signup(client, "two@example.org", sections=["sport", "politics"], frequency="weekly")
    assert choice_of(app, "two@example.org") == (
        "politics,sport",
        Frequency.WEEKLY,
        SubscriberStatus.PENDING,
    )


def test_clearing_every_box_is_an_error_that_stores_nothing(app, client, with_sections):
    response = signup(client, "none@example.org", sections_shown="1")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "choose at least one section" in page
    assert 'value="none@example.org"' in page  # the reader's address is kept
    with app.app_context():
        assert db.session.scalar(select(Subscriber.id)) is None


def test_json_signup_takes_a_list_of_sections(app, client, with_sections):
    token = csrf_token(client)
    answer = client.post(
        "/subscribe",
        json={"email": "js@example.org", "sections": ["world"], "frequency": "weekly"},
        headers={"X-CSRFToken": token},
    )
    assert answer.status_code == 202
    assert choice_of(app, "js@example.org")[:2] == ("world", Frequency.WEEKLY)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"sections": ["garden"]}, "Unknown section 'garden'"),
        ({"sections": "politics"}, "must be a list"),
        ({"sections": [1]}, "must be a list"),
        ({"sections": []}, "at least one section"),
        ({"frequency": "hourly"}, "daily or weekly"),
    ],
)
def test_a_bad_choice_is_a_400_that_stores_nothing(app, client, with_sections, body, complaint):
    token = csrf_token(client)
    answer = client.post(
        "/subscribe", json={"email": "bad@example.org", **body}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 400
    assert complaint in answer.get_json()["error"]
    with app.app_context():
        assert db.session.scalar(select(Subscriber.id)) is None


def test_a_signup_never_changes_an_active_readers_choice(app, client, with_sections):
    add_choosing_readers(app, {"a@example.org": ("sport", Frequency.DAILY)})
    signup(client, "a@example.org", sections=["politics"], frequency="weekly")
    assert choice_of(app, "a@example.org") == ("sport", Frequency.DAILY, SubscriberStatus.ACTIVE)


def test_an_old_form_without_choices_signs_up_for_everything_daily(app, client, with_sections):
    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    del fields["sections_shown"]  # a form pasted before sections existed has no boxes
    client.post("/subscribe", data={**fields, "email": "old@example.org"})
    assert choice_of(app, "old@example.org")[:2] == (None, Frequency.DAILY)


def test_the_embed_snippet_carries_the_section_boxes(console, with_sections):
    page = html.unescape(console.get("/editor/signup-form").get_data(as_text=True))
    assert 'name="sections" value="world" checked>\n      World news</label>' in page
    assert 'name="sections_shown"' in page
    assert 'name="frequency" value="weekly"' in page


def test_csv_import_and_export_carry_sections_and_frequency(app, with_sections):
    from mailer.subscribers import csv_files as subscriber_csv
    from mailer.subscribers.records import export_rows

    text = (
        "email,name,status,consented_at,sections,frequency\n"
        "a@example.org,A,active,2026-01-01T00:00:00Z,sport politics,weekly\n"
        "b@example.org,B,active,2026-01-01T00:00:00Z,,\n"
        "c@example.org,C,active,2026-01-01T00:00:00Z,garden,daily\n"
        "d@example.org,D,active,2026-01-01T00:00:00Z,world,monthly\n"
    )
    with app.app_context():
        rows, errors, _duplicates = subscriber_csv.parse_rows(text)
    assert [(r.email, r.sections, r.frequency) for r in rows] == [
        ("a@example.org", "politics,sport", Frequency.WEEKLY),
        ("b@example.org", None, Frequency.DAILY),
    ]
    assert [line for line, _why in errors] == [4, 5]
    assert "garden" in errors[0][1] and "daily or weekly" in errors[1][1]
    with app.app_context():
        subscriber_csv._apply_chunk(rows, "import:test")
        exported = list(export_rows())
    assert exported[0][-2:] == ["sections", "frequency"]
    assert [row[-2:] for row in exported[1:]] == [["politics sport", "weekly"], ["", "daily"]]


def test_a_form_pasted_before_sections_changed_still_signs_readers_up(app, client, with_sections):
    from mailer import sections

    fields = hidden_fields(client.get("/subscribe").get_data(as_text=True))
    assert fields["sections_shown"] == "politics,world,sport"
    with app.app_context():
        sections.add_section("arts", "Arts")
        sections.retire_section("sport")
    # Every box it showed ticked: every section, the one added since too.
    every = ["politics", "world", "sport"]
    client.post("/subscribe", data={**fields, "email": "all@example.org", "sections": every})
    assert choice_of(app, "all@example.org")[0] is None
    # Some boxes: the retired one is dropped, not an error.
    client.post(
        "/subscribe",
        data={**fields, "email": "some@example.org", "sections": ["world", "sport"]},
    )
    assert choice_of(app, "some@example.org")[0] == "world"
    only_retired = client.post(
        "/subscribe", data={**fields, "email": "old@example.org", "sections": ["sport"]}
    )
    assert only_retired.status_code == 400


def test_an_export_with_a_retired_section_imports_back_as_it_was(app, with_sections):
    from mailer import sections
    from mailer.subscribers import csv_files as subscriber_csv

    with app.app_context():
        sections.retire_section("sport")
        rows, errors, _ = subscriber_csv.parse_rows(
            "email,status,consented_at,sections\n"
            "a@example.org,active,2026-01-01T00:00:00Z,sport world\n"
        )
    assert errors == []
    assert rows[0].sections == "sport,world"


def test_the_console_files_articles_under_the_sections_offered_now(app, console, with_sections):
    from mailer import sections
    from mailer.content import articles

    with app.app_context():
        sections.add_section("arts", "Arts")
        sections.retire_section("sport")
        # A feed mapped to a retired section still files its articles there.
        feed = articles.parse_article(
            {"title": "Match", "url": "https://news.example.org/m", "section": "sport"},
            retired_ok=True,
        )
    assert feed.section == "sport"
    page = console.get("/editor/articles").get_data(as_text=True)
    assert '<option value="arts">Arts</option>' in page
    assert '<option value="sport">' not in page


def test_the_confirm_page_shows_what_the_reader_will_get(app, client, with_sections):
    from mailer.mail.links import confirm_url

    signup(client, "c@example.org", sections=["world", "sport"], frequency="weekly")
    with app.app_context():
        reader = db.session.scalars(select(Subscriber)).one()
        path = confirm_url(reader.id, reader.link_key).removeprefix("https://news.example.org")
    page = client.get(path).get_data(as_text=True)
    assert "You will get: World news, Sport, once a week." in page
