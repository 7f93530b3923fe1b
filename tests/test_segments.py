"""One run, many segments: each reader gets the new articles of their sections (and the
front page's) at the frequency they chose, rendered once per set of sections."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from mailer import delivery
from mailer.access.api_tokens import create_api_token
from mailer.models import DigestSegment, Frequency, Subscriber
from mailer.platform.db import db
from tests.helpers import (
    add_choosing_readers,
    csrf_token,
    hidden_fields,
    html_body,
    link_path,
    make_digest_here,
    text_body,
    wait_until,
)

SECTIONS = (("politics", "Politics"), ("world", "World news"), ("sport", "Sport"))
SITE = "https://news.example.org"

# address: (sections key, frequency)
READERS = {
    "politics@example.org": ("politics", Frequency.DAILY),
    "sport@example.org": ("sport", Frequency.DAILY),
    "everything@example.org": (None, Frequency.DAILY),
    "world@example.org": ("world", Frequency.DAILY),  # nothing new in world: no mail
    "weekly@example.org": (None, Frequency.WEEKLY),
    "weeklysport@example.org": ("sport", Frequency.WEEKLY),
}


@pytest.fixture
def api(app, client, settings_override):
    settings_override(sections=SECTIONS)
    with app.app_context():
        headers = {"Authorization": f"Bearer {create_api_token('site')}"}

    class Api:
        def article(self, title: str, slug: str, section: str | None = None) -> None:
            body = {"title": title, "url": f"{SITE}/{slug}", "summary": f"About {title}."}
            if section:
                body["section"] = section
            assert client.post("/api/articles", json=body, headers=headers).status_code == 201

        def digest(self, frequency: str | None = None):
            body = {"frequency": frequency} if frequency else None
            return client.post("/api/digests", json=body, headers=headers)

        def wait(self, digest_id: int) -> dict:
            def finished():
                body = client.get(f"/api/digests/{digest_id}", headers=headers).get_json()
                return body if body["done"] else None

            return wait_until(finished, timeout=30, message=f"digest {digest_id} did not finish")

    return Api()


def titles_in(message) -> set[str]:
    body = text_body(message)
    return {
        title for title in ("Vote today", "Cup final", "Town hall", "Late news") if title in body
    }


def test_each_reader_gets_their_sections_and_the_front_page_at_their_frequency(
    app, api, worker, outbox
):
    add_choosing_readers(app, READERS)
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")

    daily = api.digest()
    assert daily.status_code == 202
    done = api.wait(daily.get_json()["id"])
    assert (done["total"], done["sent"], done["nothing_new"]) == (3, 3, 1)
    assert done["frequency"] == "daily"
    got = {address: outbox.to(address) for address in READERS}
    assert {a: len(m) for a, m in got.items()} == {
        "politics@example.org": 1,
        "sport@example.org": 1,
        "everything@example.org": 1,
        "world@example.org": 0,  # their section had nothing new
        "weekly@example.org": 0,  # weekly readers get nothing from a daily run
        "weeklysport@example.org": 0,
    }
    assert titles_in(got["politics@example.org"][0]) == {"Vote today"}
    assert titles_in(got["sport@example.org"][0]) == {"Cup final"}
    assert titles_in(got["everything@example.org"][0]) == {"Vote today", "Cup final"}
    # A segment's subject is made from its own articles' titles.
    assert "Cup final" not in str(got["politics@example.org"][0]["Subject"])

    # After the daily run: they go out in the weekly run and in the next daily one.
    api.article("Town hall", "town")  # the front page: for every reader
    api.article("Late news", "late", "world")
    weekly = api.digest("weekly")
    assert weekly.status_code == 202
    done = api.wait(weekly.get_json()["id"])
    assert (done["frequency"], done["total"], done["sent"], done["articles"]) == (
        "weekly",
        2,
        2,
        4,
    )
    [week] = outbox.to("weekly@example.org")
    assert titles_in(week) == {"Vote today", "Cup final", "Town hall", "Late news"}
    [sport_week] = outbox.to("weeklysport@example.org")
    assert titles_in(sport_week) == {"Cup final", "Town hall"}
    # The weekly mail says it is weekly, and offers its readers every day, not "weekly".
    for mail in (week, sport_week):  # the whole digest, and a segment rendered later
        for body in (text_body(mail), html_body(mail)):
            assert "The week's digest · " in body
            assert "or get it every day" in body and "get it weekly" not in body
    daily_mail = got["politics@example.org"][0]
    for body in (text_body(daily_mail), html_body(daily_mail)):
        assert "The week's digest" not in body and "or get it weekly" in body
    # Each article is in exactly one weekly digest: nothing is left for another.
    assert api.digest("weekly").status_code == 409
    # The daily run still owes the articles that came after it, to daily readers only.
    outbox.clear()
    later = api.wait(api.digest().get_json()["id"])
    assert (later["sent"], later["nothing_new"]) == (4, 0)
    assert titles_in(outbox.to("politics@example.org")[0]) == {"Town hall"}
    assert titles_in(outbox.to("world@example.org")[0]) == {"Town hall", "Late news"}
    assert outbox.to("weekly@example.org") == []


def test_a_set_of_sections_is_rendered_once_for_all_its_readers(app, api, monkeypatch):
    import mailer.delivery.rows
    from mailer.digests import compose

    # Ranges of a few readers: the set's readers are met by many chunks.
    monkeypatch.setattr(mailer.delivery.rows, "FIRST_CHUNK", 4)
    monkeypatch.setattr(mailer.delivery.rows, "MATERIALIZE_CHUNK", 6)
    add_choosing_readers(
        app,
        {f"p{n}@example.org": ("politics", Frequency.DAILY) for n in range(30)}
        | {f"w{n}@example.org": ("world", Frequency.DAILY) for n in range(5)},
    )
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    rendered: list[int] = []
    real_digest = compose.digest
    monkeypatch.setattr(
        compose,
        "digest",
        lambda chosen, *args, **kw: (
            rendered.append(len(chosen)) or real_digest(chosen, *args, **kw)
        ),
    )
    digest_id = make_digest_here(app, monkeypatch)
    # The whole digest when it is made, then the politics set once (world has nothing new).
    assert rendered == [2, 1]
    with app.app_context():
        segments = db.session.execute(
            select(DigestSegment.sections_key, DigestSegment.articles).where(
                DigestSegment.digest_id == digest_id
            )
        ).all()
        assert sorted(segments) == [("politics", 1), ("world", 0)]

        progress = delivery.digest_progress(digest_id)
    assert (progress["total"], progress["nothing_new"]) == (30, 5)


def test_a_weekly_run_needs_weekly_readers_and_leaves_the_articles_waiting(app, api):
    add_choosing_readers(app, {"daily@example.org": (None, Frequency.DAILY)})
    api.article("Vote today", "vote", "politics")
    refused = api.digest("weekly")
    assert refused.status_code == 409
    assert "weekly" in refused.get_json()["error"]
    assert api.digest("monthly").status_code == 400
    with app.app_context():
        from mailer.models import Article

        assert (
            db.session.scalar(
                select(func.count()).select_from(Article).where(Article.weekly_digest_id.is_(None))
            )
            == 1
        )


def test_a_daily_and_a_weekly_run_may_send_at_once_but_not_two_daily(app, api, monkeypatch):
    from mailer.digests import runs as digests
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)  # no worker: both stay sending
    add_choosing_readers(
        app,
        {"d@example.org": (None, Frequency.DAILY), "w@example.org": (None, Frequency.WEEKLY)},
    )
    api.article("Vote today", "vote", "politics")
    with app.app_context():
        daily = digests.create_digest(trigger="test")
        weekly = digests.create_digest(trigger="test", frequency=Frequency.WEEKLY)
        assert daily != weekly
    api.article("Cup final", "cup", "sport")
    with app.app_context(), pytest.raises(digests.AlreadySending, match="daily"):
        digests.create_digest(trigger="test")


def test_the_preference_center_changes_what_the_next_run_sends(app, client, api, worker, outbox):
    add_choosing_readers(app, {"reader@example.org": (None, Frequency.DAILY)})
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    api.wait(api.digest().get_json()["id"])
    [mail] = outbox.to("reader@example.org")
    assert titles_in(mail) == {"Vote today", "Cup final"}
    choices = link_path(text_body(mail), "/preferences/")
    assert choices in html_body(mail)

    page = client.get(choices)
    assert page.status_code == 200
    assert 'value="sport"\n    checked>' in page.get_data(as_text=True)
    fields = hidden_fields(page.get_data(as_text=True))
    saved = client.post(choices, data={**fields, "sections": ["sport"], "frequency": "daily"})
    assert saved.status_code == 200
    assert "Saved" in saved.get_data(as_text=True)

    outbox.clear()
    api.article("Vote again", "vote2", "politics")
    api.article("Cup replay", "cup2", "sport")
    api.wait(api.digest().get_json()["id"])
    [after] = outbox.to("reader@example.org")
    assert "Cup replay" in text_body(after) and "Vote again" not in text_body(after)

    # Weekly from now on: the next daily run has nothing for them.
    client.post(choices, data={**fields, "sections": ["sport"], "frequency": "weekly"})
    add_choosing_readers(app, {"daily@example.org": (None, Frequency.DAILY)})
    outbox.clear()
    api.article("Cup semi", "cup3", "sport")
    daily = api.wait(api.digest().get_json()["id"])
    assert daily["sent"] == 1 and outbox.to("reader@example.org") == []
    done = api.wait(api.digest("weekly").get_json()["id"])
    assert done["sent"] == 1
    [weekly] = outbox.to("reader@example.org")
    # The week's sport articles, none of its politics.
    body = text_body(weekly)
    assert all(title in body for title in ("Cup final", "Cup replay", "Cup semi"))
    assert "Vote" not in body


def test_the_console_shows_who_gets_what_and_sends_the_weekly_digest(
    app, api, console, monkeypatch
):
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)  # the pages are the point
    add_choosing_readers(app, READERS)
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")

    page = console.get("/editor/digest").get_data(as_text=True)
    assert "Who gets what" in page
    assert '<td>World news</td><td>1</td>\n    <td><span class="muted">none: no mail' in page
    assert "Send to 4 daily readers" in page
    assert "2 readers chose one digest a week; 2 articles" in page
    sport = console.get("/editor/digest/preview.html?sections=sport").get_data(as_text=True)
    assert "Cup final" in sport and "Vote today" not in sport
    assert console.get("/editor/digest/preview.html?sections=world").status_code == 404
    assert "Preview the weekly digest" in page
    weekly = console.get("/editor/digest/preview.html?frequency=weekly").get_data(as_text=True)
    assert "Cup final" in weekly and "Vote today" in weekly

    dashboard = console.get("/editor/").get_data(as_text=True)
    assert "4 active readers get the daily digest, 2 the weekly one." in dashboard
    assert "<td>Sport</td><td>4</td>" in dashboard  # sport, everything, weekly, weeklysport

    token = csrf_token(console, "/editor/digest")
    sent = console.post(
        "/editor/digest/send",
        data={"csrf_token": token, "readers": "2", "frequency": "weekly"},
        follow_redirects=True,
    )
    assert "(weekly)" in sent.get_data(as_text=True)
    digest_id = int(sent.request.path.rsplit("/", 1)[1])
    with app.app_context():
        from mailer import delivery

        delivery.materialize_digest(digest_id)  # the worker's part, here
    shown = console.get(f"/editor/digests/{digest_id}").get_data(as_text=True)
    assert "Per set of sections" in shown
    assert "<td>Every section</td><td>2</td>\n    <td>1</td>" in shown
    assert "<td>Sport</td><td>1</td>\n    <td>1</td>" in shown


def test_a_choice_changed_during_a_send_applies_from_the_next_run(app, api, monkeypatch, outbox):
    from mailer import delivery
    from mailer.sections import Choice
    from mailer.subscribers import subscriptions

    add_choosing_readers(app, {"mid@example.org": ("politics", Frequency.DAILY)})
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    digest_id = make_digest_here(app, monkeypatch)  # its rows are made: the run has begun
    with app.app_context():
        reader = db.session.scalars(select(Subscriber.id)).one()
        assert subscriptions.change_choice(reader, Choice("sport", Frequency.WEEKLY))
        delivery.send_batch(digest_id)
    [mail] = outbox.to("mid@example.org")
    assert titles_in(mail) == {"Vote today"}  # the mail of the choice it was made with


def test_a_chunks_rows_are_made_segment_by_segment(app, api, monkeypatch):
    from mailer.models import Delivery

    # Alternating choices: in subscriber order the sets interleave.
    add_choosing_readers(
        app,
        {
            f"r{n}@example.org": ("politics" if n % 2 else "sport", Frequency.DAILY)
            for n in range(40)
        },
    )
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        in_id_order = list(
            db.session.scalars(
                select(Delivery.segment_id)
                .where(Delivery.digest_id == digest_id)
                .order_by(Delivery.id)
            )
        )
    # So a batch prepares one message per segment it holds, not one per reader's choice.
    assert len(in_id_order) == 40
    changes = sum(1 for a, b in itertools.pairwise(in_id_order) if a != b)
    assert changes == 1


def test_a_choice_changed_while_rows_are_made_still_gets_the_reader_one_mail(app, api, monkeypatch):
    from sqlalchemy import update

    from mailer.digests import segments
    from mailer.models import Delivery

    add_choosing_readers(
        app,
        {
            "still@example.org": ("politics", Frequency.DAILY),
            "flip@example.org": ("politics", Frequency.DAILY),
        },
    )
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    real = segments.make_missing

    def make_then_flip(digest, keys):
        made = real(digest, keys)
        # The reader saves new choices after their key was read, before their row is made.
        db.session.execute(
            update(Subscriber)
            .where(Subscriber.email_key == "flip@example.org", Subscriber.sections == "politics")
            .values(sections="sport")
        )
        return made

    monkeypatch.setattr(segments, "make_missing", make_then_flip)
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        got = dict(
            db.session.execute(
                select(Subscriber.email_key, DigestSegment.sections_key)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .join(DigestSegment, DigestSegment.id == Delivery.segment_id)
                .where(Delivery.digest_id == digest_id)
            ).all()
        )
    assert got == {"still@example.org": "politics", "flip@example.org": "sport"}


def test_readers_with_nothing_new_are_counted_once_over_many_chunks(app, api, monkeypatch):
    import mailer.delivery.rows

    monkeypatch.setattr(mailer.delivery.rows, "FIRST_CHUNK", 3)
    monkeypatch.setattr(mailer.delivery.rows, "MATERIALIZE_CHUNK", 4)
    add_choosing_readers(
        app,
        {
            f"r{n}@example.org": ("world" if n % 3 else "politics", Frequency.DAILY)
            for n in range(20)
        },
    )
    api.article("Vote today", "vote", "politics")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        progress = delivery.digest_progress(digest_id)
    assert (progress["total"], progress["nothing_new"]) == (7, 13)


def test_the_weekly_digest_is_the_weeks_articles_not_a_backlog(app, api, monkeypatch):
    from datetime import timedelta

    from mailer.models import Article, utcnow

    add_choosing_readers(app, {"weekly@example.org": (None, Frequency.WEEKLY)})
    long_ago = utcnow() - timedelta(days=30)
    with app.app_context():
        for n in range(60):  # sent daily long ago, before the first weekly reader
            db.session.add(
                Article(
                    title=f"Old {n}",
                    url=f"{SITE}/old/{n}",
                    source="test",
                    created_at=long_ago,
                    ready_at=long_ago,
                )
            )
        db.session.commit()
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    digest_id = make_digest_here(app, monkeypatch, frequency=Frequency.WEEKLY)
    with app.app_context():
        taken = set(
            db.session.scalars(select(Article.title).where(Article.weekly_digest_id == digest_id))
        )
    assert taken == {"Vote today", "Cup final"}


def test_no_issue_is_made_when_no_reader_would_get_any_of_its_articles(app, api):
    from mailer.models import Article, Digest

    add_choosing_readers(app, {"world@example.org": ("world", Frequency.DAILY)})
    api.article("Vote today", "vote", "politics")
    refused = api.digest()
    assert refused.status_code == 409
    assert "chose the sections" in refused.get_json()["error"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Digest)) == 0
        assert db.session.scalar(select(Article.digest_id)) is None  # still waiting


def test_rows_made_before_segments_are_sent_the_whole_digest(app, api, monkeypatch, outbox):
    from sqlalchemy import update

    from mailer import delivery
    from mailer.models import Delivery

    add_choosing_readers(app, {"old@example.org": ("politics", Frequency.DAILY)})
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        # As a digest made before the upgrade left them: no segment.
        db.session.execute(update(Delivery).values(segment_id=None))
        db.session.commit()
        delivery.send_batch(digest_id)
    [mail] = outbox.to("old@example.org")
    assert titles_in(mail) == {"Vote today", "Cup final"}  # not only their section's


def test_a_segment_rendered_later_keeps_the_digest_s_date_template_and_footer(
    app, api, monkeypatch, settings_override
):
    """A set's mail is rendered when the worker making the rows meets it, which can be long
    after the digest was made: it is rendered from the inputs fixed on the digest's row."""
    from datetime import timedelta

    from mailer import delivery
    from mailer.content import draft
    from mailer.digests import compose
    from mailer.digests import runs as digests
    from mailer.platform import jobs

    settings_override(postal_address="Example News, 1 High Street")
    add_choosing_readers(
        app,
        {
            "pol@example.org": ("politics", Frequency.DAILY),
            "all@example.org": (None, Frequency.DAILY),
        },
    )
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)
    with app.app_context():
        draft.set_subject_template("{list_name}, {date}: {title}", changed_by="test")
        made_at = compose.utcnow()
        digest_id = digests.create_digest(trigger="test")
    # Before its rows are made: a new template, a new footer, and three days later.
    later = made_at + timedelta(days=3)
    monkeypatch.setattr(compose, "utcnow", lambda: later)
    settings_override(postal_address="Somewhere Else 9")
    with app.app_context():
        draft.set_subject_template("CHANGED {title}", changed_by="test")
        delivery.materialize_digest(digest_id)
        politics = db.session.scalars(
            select(DigestSegment).where(
                DigestSegment.digest_id == digest_id, DigestSegment.sections_key == "politics"
            )
        ).one()
    assert politics.subject == f"Example News, {made_at.strftime('%-d %B %Y')}: Vote today"
    assert "1 High Street" in politics.text_body and "Somewhere Else" not in politics.text_body
    assert made_at.strftime("%-d %B %Y") in politics.text_body


def test_the_next_digest_warns_when_its_subject_names_an_article_a_set_does_not_get(
    app, api, console, monkeypatch
):
    from mailer.platform import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *args: True)
    add_choosing_readers(app, READERS)
    api.article("Vote today", "vote", "politics")
    api.article("Cup final", "cup", "sport")
    token = csrf_token(console, "/editor/digest")
    console.post(
        "/editor/digest/draft", data={"csrf_token": token, "subject": "Cup Final: who won?"}
    )
    page = console.get("/editor/digest").get_data(as_text=True)
    assert "The subject names “Cup final”,\n     which 1 reader of Politics does not get" in page
    assert "readers of Sport" not in page and "readers of Every section" not in page
    assert "readers of World news" not in page  # they get no mail at all

    console.post("/editor/digest/draft", data={"csrf_token": token, "subject": "Our day"})
    assert "The subject names" not in console.get("/editor/digest").get_data(as_text=True)
