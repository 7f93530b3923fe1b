"""Readers in the console: search, history, unsubscribe, erase, export, import."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from mailer.models import Delivery, Subscriber, SubscriberStatus, Suppression, utcnow
from mailer.platform.db import db
from tests.helpers import hidden_fields, wait_until


def token(client, path: str = "/editor/subscribers") -> str:
    return (
        hidden_fields(client.get(path).get_data(as_text=True)).get("csrf_token")
        or hidden_fields(client.get("/editor/").get_data(as_text=True))["csrf_token"]
    )


def add(app, email: str, status=SubscriberStatus.ACTIVE) -> int:
    with app.app_context():
        row = Subscriber(
            email=email,
            email_key=email.lower(),
            status=status,
            confirmed_at=utcnow() if status == SubscriberStatus.ACTIVE else None,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def test_search_filter_and_history(app, console):
    for n in range(60):
        add(app, f"many{n}@example.org")
    add(app, "needle@example.org", SubscriberStatus.PENDING)
    page = console.get("/editor/subscribers?q=needle").get_data(as_text=True)
    assert "needle@example.org" in page and "many1@" not in page
    assert "1 reader" in console.get("/editor/subscribers?status=pending").get_data(as_text=True)
    first = console.get("/editor/subscribers").get_data(as_text=True)
    assert "Page 1 of 2" in first
    with app.app_context():
        reader_id = db.session.scalar(
            select(Subscriber.id).where(Subscriber.email == "many3@example.org")
        )
    history = console.get(f"/editor/subscribers/{reader_id}").get_data(as_text=True)
    assert "signed up" in history and "confirmed the subscription" in history


def test_unsubscribe_and_erase_from_the_console(app, console):
    reader = add(app, "gone@example.org")
    csrf = token(console)
    console.post(f"/editor/subscribers/{reader}/unsubscribe", data={"csrf_token": csrf})
    with app.app_context():
        assert db.session.get(Subscriber, reader).status == SubscriberStatus.UNSUBSCRIBED
    console.post(f"/editor/subscribers/{reader}/erase", data={"csrf_token": csrf})
    with app.app_context():
        assert db.session.get(Subscriber, reader) is None
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 1
        assert "gone@example.org" not in str(
            db.session.scalars(select(Suppression.email_hash)).all()
        )
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
    # An import cannot bring an erased reader back.
    result = app.test_cli_runner().invoke(
        args=[
            "import-subscribers",
            str(
                write_csv(
                    app, "email,status,consented_at\ngone@example.org,active,2026-01-01T00:00:00Z\n"
                )
            ),
        ]
    )
    assert "skipped erased: 1" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def write_csv(app, text: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "readers.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_export_csv_has_the_contract_columns(app, console):
    add(app, "Exported@example.org")
    add(app, "waiting@example.org", SubscriberStatus.PENDING)
    response = console.get("/editor/subscribers/export.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["email", "name", "status", "consented_at", "sections", "frequency"]
    assert ["waiting@example.org", "", "pending", "", "", "daily"] in rows
    assert any(r[0] == "Exported@example.org" and r[2] == "active" and r[3] for r in rows)
    cli = app.test_cli_runner().invoke(args=["export-subscribers"])
    assert cli.output.splitlines()[0] == "email,name,status,consented_at,sections,frequency"


IMPORT = """email,name,status,consented_at,favourite_colour
ok@example.org,Ok Reader,active,2026-03-01T10:00:00Z,blue
noconsent@example.org,,active,,red
later@example.org,Later,pending,,
left@example.org,,unsubscribed,,
not-an-address,,active,,
OK@example.org,Duplicate,active,2026-03-02T10:00:00Z,
existing@example.org,,unsubscribed,,
"""


def upload(console, content: bytes, name: str = "readers.csv"):
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    stream, _length, boundary = stream_encode_multipart(
        {
            "csrf_token": token(console, "/editor/subscribers/import"),
            "file": FileStorage(io.BytesIO(content), filename=name),
        },
        use_tempfile=False,
    )
    return console.post(
        "/editor/subscribers/import",
        data=stream.read(),
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def import_state(console, page: str, status: str) -> dict:
    return wait_until(
        lambda: (s := console.get(page + "/state.json").get_json())["status"] == status and s,
        timeout=30,
        message=f"the import did not reach {status}",
    )


def test_import_previews_then_applies_on_a_worker(app, console, worker, outbox):
    add(app, "existing@example.org")
    response = upload(console, IMPORT.encode())
    assert response.status_code == 302
    page = response.headers["Location"]
    preview = import_state(console, page, "previewed")
    counts = preview["summary"]["counts"]
    assert counts == {
        "new_active": 1,
        "new_pending": 2,
        "new_unsubscribed": 1,
        "unsubscribed_existing": 1,
    }
    assert preview["summary"]["invalid"] == 1 and preview["summary"]["duplicates"] == 1
    with app.app_context():  # the preview changed nothing
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
    assert "What will change" in console.get(page).get_data(as_text=True)

    console.post(page + "/start", data={"csrf_token": token(console, page)})
    done = import_state(console, page, "done")
    assert done["processed_rows"] == done["total_rows"] == 5
    with app.app_context():
        states = dict(db.session.execute(select(Subscriber.email_key, Subscriber.status)).all())
    assert states == {
        "ok@example.org": SubscriberStatus.ACTIVE,
        "noconsent@example.org": SubscriberStatus.PENDING,
        "later@example.org": SubscriberStatus.PENDING,
        "left@example.org": SubscriberStatus.UNSUBSCRIBED,
        "existing@example.org": SubscriberStatus.UNSUBSCRIBED,
    }
    outbox.wait_for("noconsent@example.org")
    outbox.wait_for("later@example.org")
    assert outbox.to("ok@example.org") == [] and outbox.to("left@example.org") == []


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (
            b"address,name\nx@example.org,X\n",
            400,
            "no &#39;email&#39; column. Its columns are: address, name",
        ),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 400, "not a CSV file"),
        ("email\nJosé@example.org\n".encode("latin-1"), 400, "not a UTF-8 text file"),
        (b"email\n" + b"x" * (50 * 1024 * 1024), 413, "too much data"),
    ],
)
def test_bad_import_files_are_refused_with_a_clear_message(app, console, content, status, message):
    response = upload(console, content)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_dashboard_charts_signups_and_unsubscribes_per_day(app, console):
    from datetime import timedelta

    from mailer.subscribers.records import daily_activity

    now = utcnow()
    with app.app_context():
        for n, age in enumerate([0, 0, 3]):
            db.session.add(
                Subscriber(
                    email=f"c{n}@example.org",
                    email_key=f"c{n}@example.org",
                    status=SubscriberStatus.ACTIVE,
                    created_at=now - timedelta(days=age),
                )
            )
        db.session.add(
            Subscriber(
                email="bye@example.org",
                email_key="bye@example.org",
                status=SubscriberStatus.UNSUBSCRIBED,
                created_at=now - timedelta(days=40),
                unsubscribed_at=now,
            )
        )
        db.session.commit()
        days, signups, leaving = daily_activity(90)
    assert len(days) == 90 and days[-1] == now.date()
    assert signups[-1] == 2 and signups[-4] == 1 and signups[-41] == 1
    assert leaving[-1] == 1 and sum(leaving) == 1
    page = console.get("/editor/").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-wide"' in page
    assert 'class="chart chart-narrow"' in page  # the phone's drawing
    assert "Signups and unsubscribes per day, last 90 days" in page
    assert page.count("<polyline") == 4  # two lines in each drawing
    assert now.strftime("%d %b") in page  # the axis ends today
    # Equal values put the lines on each other: one wide and solid, one dashed on top.
    lines = re.findall(r"<polyline[^>]*>", page)
    assert 'stroke-width="4"' in lines[0] and "stroke-dasharray" not in lines[0]
    assert 'stroke-width="2"' in lines[1] and "stroke-dasharray" in lines[1]
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count("<text") == svg.count("</text>")  # well-formed labels


def test_bounced_readers_can_be_listed_and_a_readers_choice_changed_by_an_editor(
    app, console, settings_override
):
    from mailer.models import Frequency

    settings_override(sections=(("politics", "Politics"), ("sport", "Sport")))
    add(app, "gone@example.org", SubscriberStatus.BOUNCED)
    reader = add(app, "choosy@example.org")
    listing = console.get("/editor/subscribers").get_data(as_text=True)
    assert '<option value="bounced">bounced</option>' in listing
    bounced = console.get("/editor/subscribers?status=bounced").get_data(as_text=True)
    assert "gone@example.org" in bounced and "choosy@example.org" not in bounced

    page = console.get(f"/editor/subscribers/{reader}").get_data(as_text=True)
    assert "<p>Every section · every day there is news</p>" in page
    fields = hidden_fields(page)
    path = f"/editor/subscribers/{reader}/choice"
    choice = {"sections_shown": "politics,sport", "sections": "sport", "frequency": "weekly"}
    assert console.post(path, data=choice).status_code == 400  # no CSRF token
    done = console.post(
        path, data={**choice, "csrf_token": fields["csrf_token"]}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Saved: their next digest follows it." in done
    assert "<p>Sport · once a week</p>" in done
    with app.app_context():
        row = db.session.get_one(Subscriber, reader)
        assert (row.sections, row.frequency) == ("sport", Frequency.WEEKLY)
    nothing = {"sections_shown": "politics,sport", "frequency": "daily"}
    cleared = console.post(
        path, data={**nothing, "csrf_token": fields["csrf_token"]}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Please choose at least one section." in cleared
    gone = console.get(
        f"/editor/subscribers/{add(app, 'left@example.org', SubscriberStatus.UNSUBSCRIBED)}"
    )
    assert "Change their sections" not in gone.get_data(as_text=True)


def test_the_import_button_counts_the_rows_that_change_and_imports_are_not_signups(
    app, console, worker, outbox
):
    add(app, "already@example.org")
    content = (
        "email,name,status,consented_at\n"
        "already@example.org,,active,2026-03-01T10:00:00Z\n"  # unchanged
        "fresh@example.org,,active,2026-03-01T10:00:00Z\n"
        "gone@example.org,,unsubscribed,,\n"
    )
    page = upload(console, content.encode()).headers["Location"]
    preview = import_state(console, page, "previewed")
    assert preview["summary"]["changes"] == 2 and preview["total_rows"] == 3
    shown = console.get(page).get_data(as_text=True)
    assert "Import 2 readers</button>" in shown
    console.post(page + "/start", data={"csrf_token": token(console, page)})
    import_state(console, page, "done")

    from mailer.subscribers.records import daily_activity

    with app.app_context():
        _days, signups, leaving = daily_activity(90)
    assert signups[-1] == 1  # already@ signed up today; fresh@ signed up elsewhere, before
    assert leaving[-1] == 0  # gone@ left before the import


def test_one_of_anything_is_one_not_ones(app, console):
    from tests.helpers import add_article

    add(app, "only@example.org")
    add_article(app, "Single", "https://news.example.org/single")
    page = console.get("/editor/digest").get_data(as_text=True)
    assert "Send to 1 daily reader</button>" in page
    assert "Send this digest to 1 reader now?" in page
    assert "1 readers" not in page


def test_plural_words():
    from mailer.platform.words import plural

    assert plural(1, "reader") == "1 reader"
    assert plural(0, "reader") == "0 readers"
    assert plural(2, "daily reader") == "2 daily readers"
