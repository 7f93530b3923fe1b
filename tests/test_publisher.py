"""The publisher's newsletter: editorial control, the footer, the archive, the welcome mail."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from sqlalchemy import select, update

from mailer import delivery
from mailer.models import Article, Digest, DigestStatus, Subscriber, SubscriberStatus, utcnow
from mailer.platform.db import db
from tests.helpers import (
    add_article,
    add_readers,
    hidden_fields,
    html_body,
    link_path,
    make_digest_here,
    text_body,
    wait_until,
)


def send_here(app, monkeypatch, **options) -> int:
    digest_id = make_digest_here(app, monkeypatch, **options)
    with app.app_context():
        delivery.send_batch(digest_id)
    return digest_id


def csrf(console, path="/editor/digest") -> str:
    return hidden_fields(console.get(path).get_data(as_text=True))["csrf_token"]


def article_id(app, title: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Article.id).where(Article.title == title))


def test_an_editor_shapes_the_next_digest_and_the_preview_is_what_goes_out(
    app, console, outbox, monkeypatch
):
    [reader] = add_readers(app, "edited", 1)
    add_article(app, "First", "https://news.example.org/1", summary="One.")
    add_article(app, "Second", "https://news.example.org/2", summary="Two.")
    add_article(app, "Third", "https://news.example.org/3", summary="Three.")
    token = csrf(console)
    console.post("/editor/digest/draft", data={
        "csrf_token": token,
        "subject": "The week in three stories",
        "intro": "Good morning.\n\nA **big** week: read [the budget](https://news.example.org/b).",
    })  # fmt: skip
    console.post(f"/editor/articles/{article_id(app, 'Third')}/edit", data={
        "csrf_token": token, "title": "Third, corrected", "summary": "Para one.\n\nPara two.",
    })  # fmt: skip
    for _ in range(2):  # newest first by default: First was last; now it leads
        console.post(f"/editor/articles/{article_id(app, 'First')}/move",
                     data={"csrf_token": token, "direction": "up"})  # fmt: skip
    console.post(f"/editor/articles/{article_id(app, 'Second')}/remove",
                 data={"csrf_token": token, "back": "digest"})  # fmt: skip
    preview_page = console.get("/editor/digest").get_data(as_text=True)
    preview = console.get("/editor/digest/preview.html").get_data(as_text=True)
    assert "The week in three stories" in preview_page

    send_here(app, monkeypatch)
    [mail] = outbox.wait_for(reader)
    assert str(mail["Subject"]) == "The week in three stories"
    html, text = html_body(mail), text_body(mail)
    assert "<strong>big</strong>" in html and 'href="https://news.example.org/b"' in html
    assert "A big week: read the budget (https://news.example.org/b)." in text
    # The order the editor gave: First moved to the top, above Third.
    assert text.index("First") < text.index("Third, corrected")
    assert "Second" not in text
    assert "Para one.\n\nPara two." in text.replace("\r\n", "\n")
    # The preview showed this mail: the same words, in the same order.
    for words in ("Good morning.", "<strong>big</strong>", "Third, corrected", "Para two."):
        assert words in preview
    assert "Second" not in preview
    assert preview.index("First") < preview.index("Third, corrected")
    # The draft went into this digest; the next one starts from the template again.
    with app.app_context():
        assert db.session.scalar(select(Digest.intro)).startswith("Good morning.")
    add_article(app, "Next week", "https://news.example.org/next")
    assert 'value="The week in three stories"' not in console.get("/editor/digest").text


def test_the_api_takes_a_subject_and_an_introduction(app, client, outbox, worker):
    from mailer.access.api_tokens import create_api_token

    [reader] = add_readers(app, "api", 1)
    add_article(app, "Story", "https://news.example.org/s")
    with app.app_context():
        token = create_api_token("site")
    headers = {"Authorization": f"Bearer {token}"}
    bad = client.post("/api/digests", json={"subject": "x", "color": "red"}, headers=headers)
    assert bad.status_code == 400 and "color" in bad.get_json()["error"]
    response = client.post(
        "/api/digests",
        json={"subject": "Exactly this, please", "intro": "Hello *readers*."},
        headers=headers,
    )
    assert response.status_code == 202
    [mail] = outbox.wait_for(reader)
    assert str(mail["Subject"]) == "Exactly this, please"
    assert "<em>readers</em>" in html_body(mail)


def test_the_footer_has_the_address_the_site_and_a_tap_sized_unsubscribe(
    app, outbox, monkeypatch, settings_override
):
    settings_override(
        postal_address="Example News, 1 Main Street, Springfield",
        site_url="https://news.example.com",
        site_name="Example News Online",
    )
    [reader] = add_readers(app, "footer", 1)
    add_article(app, "Footer", "https://news.example.org/f")
    digest_id = send_here(app, monkeypatch)
    [mail] = outbox.wait_for(reader)
    html, text = html_body(mail), text_body(mail)
    for body in (html, text):
        assert "Example News, 1 Main Street, Springfield" in body
        assert "Example News Online" in body and "https://news.example.com" in body
        assert f"https://news.example.org/archive/{digest_id}" in body  # view in browser
    unsubscribe = re.search(r'<a[^>]*href="https://news.example.org/unsubscribe/[^"]*"[^>]*>', html)
    style = unsubscribe.group(0)
    assert "padding:12px 16px" in style.replace(" ", "") or "padding: 12px 16px" in style
    assert "line-height:20px" in style.replace(" ", "")  # 12 + 20 + 12 = 44 px


def test_the_archive_shows_sent_digests_without_any_readers_link(
    app, client, console, outbox, monkeypatch, settings_override
):
    add_readers(app, "archive", 1)
    add_article(app, "Archived story", "https://news.example.org/archived")
    digest_id = send_here(
        app, monkeypatch, subject="Archived issue", intro="Hello from the **newsroom**."
    )
    index = client.get("/archive/").get_data(as_text=True)
    assert "Archived issue" in index
    assert '<link rel="alternate" type="application/atom+xml"' in index  # feed autodiscovery
    page = client.get(f"/archive/{digest_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Archived story" in html
    assert "/unsubscribe/" not in html and "__MAILER_" not in html
    assert "https://news.example.org/subscribe" in html
    assert "script-src" not in page.headers["Content-Security-Policy"]
    # A web page, not the mail: its heading and landmark, a way back, nothing said to readers.
    assert "<h1>Archived issue</h1>" in html and "<main" in html
    assert 'href="/archive/">&larr; All past issues' in html
    assert "View in your browser" not in html and "because you subscribed" not in html
    assert "<strong>newsroom</strong>" in html and "**" not in html
    feed = client.get("/archive/feed.xml")
    assert feed.mimetype == "application/atom+xml"
    atom = ElementTree.fromstring(feed.data)  # noqa: S314 - our own feed
    entries = atom.findall("{http://www.w3.org/2005/Atom}entry")
    assert [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries] == ["Archived issue"]
    summary = entries[0].find("{http://www.w3.org/2005/Atom}summary")
    assert summary.get("type") == "html"
    assert summary.text == "<p>Hello from the <strong>newsroom</strong>.</p>"  # rendered
    content = entries[0].find("{http://www.w3.org/2005/Atom}content")
    assert content.get("type") == "html"
    assert '<a href="https://news.example.org/archived">Archived story</a>' in content.text
    # An editor hides it; turned off, the archive is gone.
    console.post(
        f"/editor/digests/{digest_id}/archive",
        data={"csrf_token": csrf(console, f"/editor/digests/{digest_id}"), "hidden": "1"},
    )
    assert client.get(f"/archive/{digest_id}").status_code == 404
    assert "Archived issue" not in client.get("/archive/").get_data(as_text=True)
    history = console.get("/editor/digests").get_data(as_text=True)
    assert 'sent <span class="muted">· hidden from the archive</span>' in history
    settings_override(archive=False)
    assert client.get("/archive/").status_code == 404
    assert client.get("/archive/feed.xml").status_code == 404


def test_a_reader_who_confirms_gets_a_welcome_and_a_way_back_to_the_site(
    app, client, worker, outbox, settings_override
):
    from tests.helpers import signup

    settings_override(site_url="https://news.example.com", site_name="Example News Online")
    signup(client, "welcome@example.org")
    [confirmation] = outbox.wait_for("welcome@example.org")
    path = link_path(text_body(confirmation), "/confirm/")
    page = client.get(path).get_data(as_text=True)
    confirmed = client.post(path, data=hidden_fields(page)).get_data(as_text=True)
    assert 'href="https://news.example.com"' in confirmed  # not a dead end
    [_, welcome] = outbox.wait_for("welcome@example.org", count=2)
    assert str(welcome["Subject"]) == "Welcome to Example News"
    assert welcome["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    assert "Past issues: https://news.example.org/archive/" in text_body(welcome)
    with app.app_context():
        wait_until(
            lambda: db.session.scalar(select(Subscriber.welcome_sent_at)),
            message="the welcome was not recorded",
        )


def test_no_welcome_when_turned_off_or_for_imported_readers(app, monkeypatch, settings_override):
    from mailer.delivery.welcomes import send_welcome, welcomes_owed

    [reader] = add_readers(app, "nowelcome", 1, SubscriberStatus.ACTIVE)
    with app.app_context():
        db.session.execute(update(Subscriber).values(confirmed_at=utcnow()))
        db.session.commit()
        subscriber_id = db.session.scalar(select(Subscriber.id))
        settings_override(welcome_mail=False)
        assert send_welcome(subscriber_id) == "off"
        assert welcomes_owed(10) == []
    del reader


def test_a_summary_keeps_its_paragraphs():
    from mailer.content.summaries import summary_of
    from mailer.models import Article as A

    article = A(body_html="<p>The invasion.</p><p>In November, talks.</p>", summary=None)
    assert summary_of(article) == "The invasion.\n\nIn November, talks."


def test_the_reconciler_queues_owed_welcomes_a_bounded_number_at_a_time_oldest_first(
    app, monkeypatch
):
    from datetime import timedelta

    from mailer.delivery import reconciler
    from mailer.platform import jobs

    emails = add_readers(app, "owed", 5, SubscriberStatus.ACTIVE)
    with app.app_context():
        for age, email in enumerate(emails):  # owed0 confirmed last, owed4 first
            db.session.execute(
                update(Subscriber)
                .where(Subscriber.email == email)
                .values(confirmed_at=utcnow() - timedelta(hours=1, minutes=age))
            )
        db.session.commit()
        ids = dict(db.session.execute(select(Subscriber.email, Subscriber.id)).all())
    queued: list[tuple] = []
    monkeypatch.setattr(jobs, "enqueue", lambda *args: queued.append(args) or True)
    monkeypatch.setattr(reconciler, "REQUEUE_LIMIT", 2)
    with app.app_context():
        assert reconciler.reconcile()["welcomes"] == 2
    welcomes = [args[1] for args in queued if args[0] == jobs.SEND_WELCOME]
    assert welcomes == [ids["owed4@example.org"], ids["owed3@example.org"]]


def test_characters_xml_forbids_leave_the_atom_feed_well_formed(app, client):
    with app.app_context():
        db.session.add(
            Digest(
                status=DigestStatus.SENT,
                trigger="test",
                article_watermark=0,
                subject="Council \uffff votes\x0b today",
                intro="Read \x01 on",
                text_body="",
                html_body="",
                finished_at=utcnow(),
            )
        )
        db.session.commit()
    feed = client.get("/archive/feed.xml")
    atom = ElementTree.fromstring(feed.data)  # noqa: S314 - our own feed
    entry = atom.find("{http://www.w3.org/2005/Atom}entry")
    assert entry.findtext("{http://www.w3.org/2005/Atom}title") == "Council  votes today"
    assert entry.findtext("{http://www.w3.org/2005/Atom}summary") == "<p>Read  on</p>"
