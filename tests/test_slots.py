"""A reader's own links go where the template puts them, whatever an article holds."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy import MetaData, Table, create_engine, func, select, text

from mailer.access.api_tokens import create_api_token
from mailer.content.feeds import poll_feeds
from mailer.digests.compose import DigestArticle
from mailer.mail import Newsletter, links
from mailer.mail.render import RenderedEmail, render_email
from mailer.models import Article, DigestSegment, Frequency, Subscriber, utcnow
from mailer.platform.db import db
from mailer.platform.migrate import upgrade
from tests.helpers import (
    add_article,
    add_choosing_readers,
    hidden_fields,
    html_body,
    text_body,
    wait_until,
)
from tests.test_feeds import FeedServer, rss

UNSUBSCRIBE = "__MAILER_UNSUBSCRIBE_URL__"
PREFERENCES = "__MAILER_PREFERENCES_URL__"
SITE = "https://evil.example"
TRAP_URL = f"{SITE}/collect?u={UNSUBSCRIBE}&p={PREFERENCES}"
SECTIONS = (("politics", "Politics"), ("sport", "Sport"))


@pytest.fixture
def api(app) -> dict[str, str]:
    with app.app_context():
        return {"Authorization": f"Bearer {create_api_token('site')}"}


def article_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Article))


@pytest.mark.parametrize("slot", [UNSUBSCRIBE, PREFERENCES])
@pytest.mark.parametrize("field", ["url", "title", "summary", "author", "body_html"])
def test_the_api_refuses_an_article_that_holds_a_slot(app, client, api, field, slot):
    article = {"title": "Fine", "url": "https://news.example.org/fine", "summary": "Fine."}
    article[field] = {
        "url": f"{SITE}/?t={slot}",
        "body_html": f"<p>Click &#95;{slot[1:]}</p>",  # an entity: the same text once parsed
    }.get(field, f"Read {slot} now")

    response = client.post("/api/articles", json=article, headers=api)

    assert response.status_code == 400
    assert f"'{field}'" in response.get_json()["error"]
    assert article_count(app) == 0


def test_the_console_refuses_an_article_or_an_edit_that_holds_a_slot(app, console):
    form = hidden_fields(console.get("/editor/articles").get_data(as_text=True))
    page = console.post(
        "/editor/articles",
        data={**form, "title": f"Win {UNSUBSCRIBE}", "url": "https://news.example.org/w"},
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "__MAILER_...__" in html.unescape(page)
    assert article_count(app) == 0

    add_article(app, "Fine", "https://news.example.org/fine", summary="Fine.")
    with app.app_context():
        article_id = db.session.scalar(select(Article.id))
    edited = console.post(
        f"/editor/articles/{article_id}/edit",
        data={**form, "title": "Fine", "summary": f"Now {PREFERENCES}"},
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "__MAILER_...__" in html.unescape(edited)
    with app.app_context():
        assert db.session.get_one(Article, article_id).summary == "Fine."


def test_a_feed_entry_that_holds_slots_is_kept_without_them(app, settings_override):
    feed = FeedServer()
    try:
        feed.routes["/rss"] = (
            200,
            rss(
                f"<item><title>Win {UNSUBSCRIBE}</title><link>{html.escape(TRAP_URL)}</link>"
                f"<guid>urn:trap</guid><pubDate>{format_datetime(utcnow())}</pubDate>"
                f"<description>Go to {PREFERENCES}</description></item>"
            ),
            0.0,
        )
        settings_override(feeds=(feed.url + "/rss",))
        with app.app_context():
            poll_feeds()
            [article] = db.session.scalars(select(Article)).all()
    finally:
        feed.close()

    assert (article.title, article.url, article.summary) == (
        "Win",
        f"{SITE}/collect?u=&p=",
        "Go to",
    )


def reader_links(app, email: str) -> tuple[str, str]:
    with app.app_context():
        reader = db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        return (
            links.unsubscribe_url(reader.id, reader.link_key),
            links.preferences_url(reader.id, reader.link_key),
        )


def delivered(outbox, email: str) -> EmailMessage:
    [raw] = [r for r in outbox.raw if f"\r\nTo: {email}\r\n".encode() in r]
    return message_from_bytes(raw, policy=policy.default)


def test_an_article_row_holding_the_placeholders_hands_no_reader_s_links_to_its_site(
    app, client, api, worker, outbox, settings_override
):
    """An article that reached the database some other way (an older version's intake, a
    hand-written row) is shown as it is; each reader's links are only in the footer."""
    settings_override(sections=SECTIONS)
    readers = {  # the whole digest, a segment that is all of it, and one rendered apart
        "all@example.org": (None, Frequency.DAILY),
        "politics@example.org": ("politics", Frequency.DAILY),
        "sport@example.org": ("sport", Frequency.DAILY),
    }
    add_choosing_readers(app, readers)
    add_article(
        app,
        f"Win {UNSUBSCRIBE} and {PREFERENCES}",
        TRAP_URL,
        summary=f"Your links: {UNSUBSCRIBE} {PREFERENCES}",
        author=PREFERENCES,
    )
    add_article(app, "Vote today", "https://news.example.org/vote", section="politics")

    digest_id = client.post("/api/digests", headers=api).get_json()["id"]
    wait_until(
        lambda: client.get(f"/api/digests/{digest_id}", headers=api).get_json()["done"],
        timeout=30,
        message="the digest was not sent",
    )

    with app.app_context():
        rendered_apart = select(DigestSegment).where(DigestSegment.articles == 1)
        assert db.session.scalars(rendered_apart).one().sections_key == "sport"
    tokens = [link.rsplit("/", 1)[1] for e in readers for link in reader_links(app, e)]
    for email in readers:
        unsubscribe, preferences = reader_links(app, email)
        mail = delivered(outbox, email)
        assert mail["List-Unsubscribe"].startswith(f"<{unsubscribe}>")
        text, page = text_body(mail), html.unescape(html_body(mail))
        assert f"Read it: {TRAP_URL}" in text
        assert f'href="{TRAP_URL}"' in page
        footer = f"get it weekly: {preferences}\r\nUnsubscribe with one click: {unsubscribe}"
        assert text.rstrip().endswith(footer)
        for body in (text, page):
            assert body.count(unsubscribe) == 1 and body.count(preferences) == 1
            assert body.count(UNSUBSCRIBE) >= 2 and body.count(PREFERENCES) >= 3
            for site_link in re.findall(re.escape(SITE) + r"[^\s\"<>]*", body):
                assert not any(token in site_link for token in tokens), site_link


def test_the_next_digest_preview_shows_test_links_not_slots(app, console):
    add_article(app, "Preview story", "https://news.example.org/p", summary="Shown.")

    page = html.unescape(console.get("/editor/digest").get_data(as_text=True))
    framed = html.unescape(console.get("/editor/digest/preview.html").get_data(as_text=True))

    text = page.split("<summary>Text version</summary>", 1)[1]
    assert "Unsubscribe with one click: https://news.example.org/unsubscribe/test" in text
    assert "get it weekly: https://news.example.org/preferences/test" in text
    assert "__MAILER_" not in page and "__MAILER_" not in framed


def test_a_digest_rendered_before_0018_keeps_reader_links_in_its_footer_only(app, tmp_path):
    """A digest still sending across the upgrade: its fixed placeholders were slots only
    where the template put them, and stay article text everywhere else."""
    url = f"sqlite:///{tmp_path / 'upgraded.db'}"
    upgrade(url, "0017")
    with app.app_context():
        old = render_email(
            "digest",
            subject="Old",
            intro=None,
            articles=[DigestArticle(f"Win {UNSUBSCRIBE}", TRAP_URL, [PREFERENCES], None, None)],
            list_name="Example News",
            site_url=None,
            site_name=None,
            postal_address=None,
            archive_url=None,
            unsubscribe_url=UNSUBSCRIBE,
            preferences_url=PREFERENCES,
            date=utcnow(),
        )
    engine = create_engine(url)
    digests = Table("digests", MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(
            digests.insert().values(
                status="sending",
                trigger="test",
                article_watermark=1,
                subject=old.subject,
                text_body=old.text,
                html_body=old.html,
                total=1,
                materialized_up_to=1,
                created_at=utcnow(),
                hidden_from_archive=False,
            )
        )
    upgrade(url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM digests")).mappings().one()
    engine.dispose()

    with app.app_context():
        rendered = RenderedEmail(
            row["subject"], row["text_body"], row["html_body"], row["slot_marker"]
        )
        mail = Newsletter(rendered).copy_for("old@example.org", (1, "key"), "<1@example.org>")
        unsubscribe, preferences = links.unsubscribe_url(1, "key"), links.preferences_url(1, "key")
    message = message_from_bytes(mail.data, policy=policy.default)
    plain, page = text_body(message), html.unescape(html_body(message))
    assert plain.rstrip().endswith(
        f"get it weekly: {preferences}\r\nUnsubscribe with one click: {unsubscribe}"
    )
    assert f"Read it: {TRAP_URL}" in plain and f'href="{TRAP_URL}"' in page
    for body in (plain, page):
        assert body.count(unsubscribe) == 1 and body.count(preferences) == 1
        assert UNSUBSCRIBE in body and PREFERENCES in body
