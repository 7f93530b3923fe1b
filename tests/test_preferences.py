"""The preference center: a reader changes sections and frequency from a link, no login."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.mail.links import preferences_url, unsubscribe_url
from mailer.models import Frequency, Subscriber, SubscriberStatus
from mailer.platform.db import db
from tests.helpers import hidden_fields

SECTIONS = (("politics", "Politics"), ("world", "World news"), ("sport", "Sport"))


@pytest.fixture
def reader(app, settings_override):
    """An active daily reader of every section, and the paths of their two links."""
    settings_override(sections=SECTIONS)
    with app.app_context():
        row = Subscriber(
            email="r@example.org", email_key="r@example.org", status=SubscriberStatus.ACTIVE
        )
        db.session.add(row)
        db.session.commit()
        site = "https://news.example.org"
        return (
            row.id,
            preferences_url(row.id, row.link_key).removeprefix(site),
            unsubscribe_url(row.id, row.link_key).removeprefix(site),
        )


def choice(app, subscriber_id: int) -> tuple[str | None, Frequency]:
    with app.app_context():
        row = db.session.get_one(Subscriber, subscriber_id)
        return row.sections, row.frequency


def test_the_page_shows_the_readers_choice_and_saves_a_new_one(app, client, reader):
    subscriber_id, path, _ = reader
    page = client.get(path).get_data(as_text=True)
    assert "r@example.org" in page and 'value="daily"\n    checked>' in page
    fields = hidden_fields(page)
    answer = client.post(path, data={**fields, "sections": ["world"], "frequency": "weekly"})
    assert answer.status_code == 200
    assert choice(app, subscriber_id) == ("world", Frequency.WEEKLY)
    saved = answer.get_data(as_text=True)
    assert 'value="world"\n    checked>' in saved
    assert 'value="sport"\n    checked>' not in saved  # the page shows the new choice
    assert 'value="weekly"\n    checked>' in saved


def test_a_post_without_the_pages_csrf_token_changes_nothing(app, client, reader):
    subscriber_id, path, _ = reader
    answer = client.post(path, data={"sections": ["world"], "frequency": "weekly"})
    assert answer.status_code == 400
    assert choice(app, subscriber_id) == (None, Frequency.DAILY)


@pytest.mark.parametrize(
    "form",
    [
        {"sections_shown": "1"},  # every box cleared
        {"sections": ["garden"]},
        {"sections": ["world"], "frequency": "hourly"},
    ],
)
def test_a_bad_choice_is_a_400_page_that_changes_nothing(app, client, reader, form):
    subscriber_id, path, _ = reader
    fields = hidden_fields(client.get(path).get_data(as_text=True))
    fields.pop("sections_shown")
    answer = client.post(path, data={**fields, **form})
    assert answer.status_code == 400
    assert 'role="alert"' in answer.get_data(as_text=True)
    assert choice(app, subscriber_id) == (None, Frequency.DAILY)


def test_a_tampered_or_unsubscribe_token_does_not_open_the_page(client, reader):
    _, path, unsubscribe = reader
    assert client.get(path[:-2] + "xx").status_code == 400
    # Purpose-bound: the unsubscribe token of the same reader is no key to their choices.
    assert client.get("/preferences/" + unsubscribe.rsplit("/", 1)[1]).status_code == 400


def test_the_test_copys_link_says_it_was_a_test(client, reader):
    page = client.get("/preferences/test")
    assert page.status_code == 200
    assert "test copy" in page.get_data(as_text=True)


def test_an_unsubscribed_reader_can_not_choose_but_can_come_back(app, client, reader):
    subscriber_id, path, _ = reader
    fields = hidden_fields(client.get(path).get_data(as_text=True))
    with app.app_context():
        db.session.get_one(Subscriber, subscriber_id).status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    page = client.get(path).get_data(as_text=True)
    assert "You are not subscribed" in page and "Subscribe again" in page
    answer = client.post(path, data={**fields, "sections": ["world"]})
    assert answer.status_code == 409
    assert choice(app, subscriber_id) == (None, Frequency.DAILY)


def test_the_unsubscribe_page_offers_weekly_with_the_same_sections(app, client, reader):
    subscriber_id, _, unsubscribe = reader
    with app.app_context():
        db.session.get_one(Subscriber, subscriber_id).sections = "politics,sport"
        db.session.commit()
    page = client.get(unsubscribe).get_data(as_text=True)
    assert "Get it weekly instead" in page
    assert "Choose only the sections you want" in page
    form = page[page.index("Or fewer emails") :]
    action = form[form.index('action="') + 8 :].split('"', 1)[0]
    fields = hidden_fields(form)
    sections = [s for s in ("politics", "world", "sport") if f'value="{s}"' in form]
    answer = client.post(action, data={**fields, "sections": sections})
    assert answer.status_code == 200
    assert choice(app, subscriber_id) == ("politics,sport", Frequency.WEEKLY)
    with app.app_context():
        status = db.session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber_id))
    assert status == SubscriberStatus.ACTIVE


def retire(app, slug: str) -> None:
    from mailer import sections

    with app.app_context():
        sections.retire_section(slug)


def test_saving_choices_keeps_a_retired_section_the_reader_had(app, client, reader):
    subscriber_id, path, unsubscribe = reader
    with app.app_context():
        db.session.get_one(Subscriber, subscriber_id).sections = "sport"
        db.session.commit()
    retire(app, "sport")
    page = client.get(path).get_data(as_text=True)
    assert "Your choice also keeps Sport" in page
    fields = hidden_fields(page)
    assert fields["sections_shown"] == "politics,world"
    client.post(path, data={**fields, "sections": ["world"]})
    assert choice(app, subscriber_id) == ("sport,world", Frequency.DAILY)
    # "Weekly instead" keeps the choice as it is, even one of retired sections only.
    with app.app_context():
        db.session.get_one(Subscriber, subscriber_id).sections = "sport"
        db.session.commit()
    page = client.get(unsubscribe).get_data(as_text=True)
    form = page[page.index("Or fewer emails") :]
    action = form[form.index('action="') + 8 :].split('"', 1)[0]
    assert client.post(action, data=hidden_fields(form)).status_code == 200
    assert choice(app, subscriber_id) == ("sport", Frequency.WEEKLY)


def test_a_preferences_link_neither_unsubscribes_nor_confirms(app, client, reader):
    subscriber_id, path, _ = reader
    token = path.rsplit("/", 1)[1]
    assert (
        client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 400
    )
    assert client.get(f"/confirm/{token}").status_code == 400
    with app.app_context():
        status = db.session.get_one(Subscriber, subscriber_id).status
    assert status == SubscriberStatus.ACTIVE
