"""Sections: set up by MAILER_SECTIONS, carried by articles (the API and the console)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.access.api_tokens import create_api_token
from mailer.models import Article
from mailer.platform.db import db
from mailer.platform.settings import ConfigError, load_settings
from tests.conftest import SECRET
from tests.helpers import add_choosing_readers, csrf_token

SECTIONS = (("politics", "Politics"), ("world", "World news"), ("sport", "Sport"))


def settings_with(raw: str):
    return load_settings(
        environ={"MAILER_SECRET_KEY": SECRET, "MAILER_SECTIONS": raw},
    )


def test_sections_are_read_in_order_with_their_names():
    assert settings_with("politics:Politics, world:World news,sport").sections == (
        ("politics", "Politics"),
        ("world", "World news"),
        ("sport", "sport"),
    )
    assert settings_with("").sections == ()


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("Politics:Politics", "not a section slug"),
        ("politics:A,politics:B", "named twice"),
        ("world:" + "W" * 61, "longer than 60"),
        ("with space:Name", "not a section slug"),
    ],
)
def test_a_malformed_section_list_names_the_setting(raw, complaint):
    with pytest.raises(ConfigError, match=complaint) as error:
        settings_with(raw)
    assert "MAILER_SECTIONS" in str(error.value)


@pytest.fixture
def post_article(app, client):
    """Posts an article through the API as the site does, with a live token."""
    with app.app_context():
        headers = {"Authorization": f"Bearer {create_api_token('site')}"}
    return lambda **body: client.post("/api/articles", json=body, headers=headers)


def articles_by_url(app) -> dict[str, str | None]:
    with app.app_context():
        return dict(db.session.execute(select(Article.url, Article.section)).all())


def test_the_api_files_an_article_under_a_known_section_or_the_front_page(
    app, post_article, settings_override
):
    settings_override(sections=SECTIONS)
    vote, everyone = "https://news.example.org/vote", "https://news.example.org/all"
    assert post_article(title="Vote", url=vote, section="politics").status_code == 201
    assert post_article(title="All", url=everyone).status_code == 201
    refused = post_article(title="Garden", url="https://news.example.org/garden", section="garden")
    assert refused.status_code == 400
    assert "politics, world, sport" in refused.get_json()["error"]
    assert articles_by_url(app) == {vote: "politics", everyone: None}


def test_without_sections_set_up_a_section_is_refused_and_nothing_stored(app, post_article):
    refused = post_article(title="Vote", url="https://news.example.org/vote", section="politics")
    assert refused.status_code == 400
    assert "MAILER_SECTIONS" in refused.get_json()["error"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 0


def test_an_editor_picks_a_section_and_sees_it_in_the_queue(app, console, settings_override):
    settings_override(sections=SECTIONS)
    page = console.get("/editor/articles").get_data(as_text=True)
    assert '<option value="world">World news</option>' in page
    console.post(
        "/editor/articles",
        data={
            "csrf_token": csrf_token(console, "/editor/articles"),
            "title": "Abroad",
            "url": "https://news.example.org/abroad",
            "section": "world",
        },
    )
    assert articles_by_url(app) == {"https://news.example.org/abroad": "world"}
    assert '<td data-label="Section">World news</td>' in console.get("/editor/articles").get_data(
        as_text=True
    )


def test_a_feed_set_to_a_section_files_its_articles_there(app, settings_override):
    from datetime import timedelta

    from mailer.content.feeds import poll_feeds
    from tests.test_feeds import FeedServer, item, rss

    server = FeedServer()
    try:
        politics, everything = server.url + "/politics", server.url + "/all"
        server.routes["/politics"] = (200, rss(item(1)), 0.0)
        server.routes["/all"] = (200, rss(item(2, age=timedelta(hours=2))), 0.0)
        settings_override(
            sections=SECTIONS, feeds=(politics, everything), feed_sections=(("politics", politics),)
        )
        with app.app_context():
            assert poll_feeds() == {politics: 1, everything: 1}
    finally:
        server.close()
    with app.app_context():
        filed = dict(db.session.execute(select(Article.source, Article.section)).all())
    assert filed == {f"feed:{politics}": "politics", f"feed:{everything}": None}


@pytest.mark.parametrize(
    ("feed_sections", "complaint"),
    [
        ("garden=https://news.example.org/feed", "not one of MAILER_SECTIONS"),
        ("politics=https://news.example.org/other", "not one of MAILER_FEEDS"),
    ],
)
def test_a_feed_section_must_name_a_known_section_and_feed(feed_sections, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load_settings(
            environ={
                "MAILER_SECRET_KEY": SECRET,
                "MAILER_SECTIONS": "politics:Politics",
                "MAILER_FEEDS": "https://news.example.org/feed",
                "MAILER_FEED_SECTIONS": feed_sections,
            }
        )


def test_editors_add_rename_retire_and_restore_sections(
    app, client, console, post_article, settings_override
):
    from mailer.models import Frequency, Subscriber

    settings_override(sections=SECTIONS)
    add_choosing_readers(
        app,
        {
            "only@example.org": ("sport", Frequency.DAILY),
            "all@example.org": (None, Frequency.DAILY),
        },
    )
    page = console.get("/editor/sections").get_data(as_text=True)
    named = '<td data-label="Readers who named it">1 <span class="muted">(1 with no other'
    assert named + " section)</span></td>" in page
    token = csrf_token(console, "/editor/sections")

    console.post("/editor/sections", data={"csrf_token": token, "slug": "arts", "name": "Arts"})
    console.post("/editor/sections/world/rename", data={"csrf_token": token, "name": "The World"})
    console.post("/editor/sections/sport/retire", data={"csrf_token": token})
    form = client.get("/subscribe").get_data(as_text=True)
    assert 'value="arts"' in form and "The World" in form and 'value="sport"' not in form
    refused = post_article(title="Match", url="https://news.example.org/m", section="sport")
    assert refused.status_code == 400
    assert (
        post_article(title="Show", url="https://news.example.org/s", section="arts").status_code
        == 201
    )
    with app.app_context():
        # A retired section stays in the choice of readers who made it.
        kept = db.session.scalar(
            select(Subscriber.sections).where(Subscriber.email_key == "only@example.org")
        )
        assert kept == "sport"
        from mailer import sections

        assert sections.describe("sport,world") == "The World, Sport (retired)"

    console.post("/editor/sections/sport/restore", data={"csrf_token": token})
    assert 'value="sport"' in client.get("/subscribe").get_data(as_text=True)
    bad = console.post(
        "/editor/sections", data={"csrf_token": token, "slug": "Bad Slug", "name": "X"}
    )
    assert "lowercase letters" in console.get("/editor/sections").get_data(as_text=True)
    assert bad.status_code == 302
    assert (
        console.post("/editor/sections/nope/retire", data={"csrf_token": token}).status_code == 302
    )
    assert (
        console.post("/editor/sections/sport/explode", data={"csrf_token": token}).status_code
        == 404
    )


def test_db_upgrade_stores_the_configured_sections_and_keeps_an_editors_rename(
    app, settings_override
):
    from mailer import sections
    from mailer.models import Section

    settings_override(sections=SECTIONS)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Section)) == 0
        assert [s for s, _n in sections.offered()] == ["politics", "world", "sport"]  # read only
        assert db.session.scalar(select(func.count()).select_from(Section)) == 0
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Section)) == 3
        sections.rename_section("world", "Abroad")
        assert sections.store_configured() == 0
        assert sections.names()["world"] == "Abroad"
