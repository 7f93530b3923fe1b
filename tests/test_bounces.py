"""Bounces and complaints: real-world-shaped samples through the SMTP receiver and the CLI."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from mailer import delivery
from mailer.bounces.receiver import BounceHandler
from mailer.models import Bounce, BounceKind, Delivery, Subscriber, SubscriberStatus, Suppression
from mailer.platform.db import db
from mailer.subscribers.records import address_hash
from tests.conftest import free_port
from tests.helpers import add_article, add_readers, make_digest_here

SAMPLES = Path(__file__).parent / "bounces"
EXPECTED = {
    "rfc3464_failed.eml": "hard",
    "rfc3464_delayed.eml": "soft",
    "gmail.eml": "hard",
    "outlook.eml": "hard",
    "yahoo.eml": "hard",
    "postfix_full.eml": "hard",
    "postfix_delayed.eml": "soft",
    "exim.eml": "hard",
    "arf.eml": "complaint",
    "autoreply.eml": "not-a-bounce",
}


def sample(
    name: str, *, verp: str, reader: str, list_unsubscribe: str = "", fbl_to: str = ""
) -> bytes:
    text = (SAMPLES / name).read_text()
    for marker, value in {
        "%%VERP%%": verp,
        "%%READER%%": reader,
        "%%LIST_UNSUBSCRIBE%%": list_unsubscribe,
        "%%FBL_TO%%": fbl_to or verp,
    }.items():
        text = text.replace(marker, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()  # mail has CRLF


def send_digest_here(app, monkeypatch) -> int:
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        delivery.send_batch(digest_id)
    return digest_id


def verp_of(outbox, address: str) -> str:
    [(sender, _)] = [(s, r) for s, r in outbox.envelopes if r == [address]][-1:]
    return sender


@pytest.fixture
def receiver(app):
    controller = Controller(BounceHandler(app), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


def deliver(receiver, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", receiver.port) as smtp:
        smtp.sendmail("", [recipient], raw)


def status_of(app, email: str) -> SubscriberStatus:
    with app.app_context():
        return db.session.scalar(select(Subscriber.status).where(Subscriber.email == email))


def bounce_kinds(app, email: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Bounce.kind)
                .join(Subscriber, Subscriber.id == Bounce.subscriber_id)
                .where(Subscriber.email == email)
            )
        )


@pytest.mark.parametrize(("name", "outcome"), EXPECTED.items())
def test_each_sample_through_the_smtp_receiver_changes_only_its_reader(
    app, outbox, receiver, monkeypatch, name, outcome
):
    target, bystander = add_readers(app, "bounce", 2)
    add_article(app, "Bounced", "https://news.example.org/bounced")
    send_digest_here(app, monkeypatch)
    [copy] = outbox.to(target)
    raw = sample(
        name,
        verp=verp_of(outbox, target),
        reader=bystander,  # the text names the other reader: only the token may count
        list_unsubscribe=copy["List-Unsubscribe"],
        fbl_to="bounces@news.example.org",
    )
    recipient = "bounces@news.example.org" if name == "arf.eml" else verp_of(outbox, target)
    deliver(receiver, recipient, raw)

    expected_status = {
        "hard": SubscriberStatus.BOUNCED,
        "soft": SubscriberStatus.ACTIVE,
        "complaint": SubscriberStatus.UNSUBSCRIBED,
        "not-a-bounce": SubscriberStatus.ACTIVE,
    }[outcome]
    assert status_of(app, target) == expected_status
    assert bounce_kinds(app, target) == ([] if outcome == "not-a-bounce" else [outcome])
    assert status_of(app, bystander) == SubscriberStatus.ACTIVE
    assert bounce_kinds(app, bystander) == []
    if outcome == "complaint":
        with app.app_context():
            assert db.session.scalar(
                select(Suppression.id).where(Suppression.email_hash == address_hash(target))
            )
            assert db.session.scalar(
                select(Subscriber.complained_at).where(Subscriber.email == target)
            )


def test_the_cli_takes_a_bounce_on_standard_input(app, outbox, monkeypatch):
    [reader] = add_readers(app, "cli", 1)
    add_article(app, "CLI", "https://news.example.org/cli")
    send_digest_here(app, monkeypatch)
    verp = verp_of(outbox, reader)
    result = app.test_cli_runner().invoke(
        args=["process-bounce", "--recipient", verp],
        input=sample("gmail.eml", verp=verp, reader=reader),
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "hard"
    assert status_of(app, reader) == SubscriberStatus.BOUNCED
    # Without --recipient, the address is found in the headers (Delivered-To, To).
    other = app.test_cli_runner().invoke(
        args=["process-bounce"], input=sample("autoreply.eml", verp=verp, reader=reader)
    )
    assert other.exit_code == 0 and other.output.strip() == "not-a-bounce"


def test_a_database_that_does_not_answer_makes_the_mta_retry(app, environment, tmp_path):
    from mailer import create_app
    from mailer.platform.settings import load_settings

    broken = create_app(
        load_settings(
            environ={**environment, "MAILER_DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir.db"}
        )
    )
    with app.app_context():
        from mailer.mail.verp import MailKind, MailRef, envelope_sender

        verp = envelope_sender(MailRef(MailKind.DELIVERY, 1))
    result = broken.test_cli_runner().invoke(
        args=["process-bounce", "--recipient", verp],
        input=sample("gmail.eml", verp=verp, reader="x@example.org"),
    )
    assert result.exit_code == 75


def test_tampered_and_foreign_tokens_change_nothing(app, outbox, receiver, monkeypatch):
    from mailer.mail.verp import MailKind, MailRef, envelope_sender
    from mailer.platform.settings import load_settings

    [reader] = add_readers(app, "tamper", 1)
    add_article(app, "Tamper", "https://news.example.org/tamper")
    send_digest_here(app, monkeypatch)
    verp = verp_of(outbox, reader)
    local, domain = verp.split("@")
    tampered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    other_secret = load_settings(
        environ={
            "MAILER_SECRET_KEY": "another-mailer-installation-key",
            "MAILER_FROM": "n@news.example.org",
        }
    )
    with app.app_context():
        delivery_id = db.session.scalar(select(Delivery.id))
    foreign = envelope_sender(MailRef(MailKind.DELIVERY, delivery_id), other_secret)
    for address in (tampered, foreign, "bounces@news.example.org"):
        deliver(receiver, address, sample("gmail.eml", verp=address, reader=reader))
    assert status_of(app, reader) == SubscriberStatus.ACTIVE
    assert bounce_kinds(app, reader) == []


def test_the_receiver_refuses_mail_for_anyone_else(receiver):
    with (
        smtplib.SMTP("127.0.0.1", receiver.port) as smtp,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        smtp.sendmail("", ["editor@news.example.org"], b"Subject: hello\r\n\r\nhi\r\n")


def test_soft_bounces_in_a_row_make_a_reader_bounced_and_a_good_digest_resets_them(
    app, outbox, receiver, monkeypatch, settings_override
):
    settings_override(soft_bounce_limit=2)
    steady, flaky = add_readers(app, "soft", 2)
    verps = []
    for n in range(3):
        add_article(app, f"Soft {n}", f"https://news.example.org/soft/{n}")
        send_digest_here(app, monkeypatch)
        verps.append((verp_of(outbox, steady), verp_of(outbox, flaky)))
    # Digest 1 and 3 bounce softly for `steady`; digest 2 went through: no row of two.
    for index in (0, 2):
        verp = verps[index][0]
        deliver(receiver, verp, sample("postfix_delayed.eml", verp=verp, reader=steady))
    assert status_of(app, steady) == SubscriberStatus.ACTIVE
    # Digests 2 and 3, the last two, bounce softly for `flaky`: bounced.
    for index in (1, 2):
        verp = verps[index][1]
        deliver(receiver, verp, sample("rfc3464_delayed.eml", verp=verp, reader=flaky))
    assert status_of(app, flaky) == SubscriberStatus.BOUNCED
    # The next digest skips them.
    add_article(app, "After", "https://news.example.org/after")
    outbox.clear()
    send_digest_here(app, monkeypatch)
    assert [r for _s, r in outbox.envelopes] == [[steady]]


def test_a_refusal_during_the_send_is_a_hard_bounce(app, outbox, monkeypatch):
    refused, fine = add_readers(app, "refused", 2)
    add_article(app, "Refused", "https://news.example.org/refused")
    outbox.refuse(refused, "550 5.1.1 <refused0@example.org>: no such user")
    send_digest_here(app, monkeypatch)
    assert status_of(app, refused) == SubscriberStatus.BOUNCED
    assert status_of(app, fine) == SubscriberStatus.ACTIVE
    with app.app_context():
        bounce = db.session.scalars(select(Bounce)).one()
    assert (bounce.kind, bounce.status) == (BounceKind.HARD, "5.1.1")


def test_a_bounced_confirmation_marks_the_reader_bounced(app, outbox, receiver):
    from sqlalchemy import update

    from mailer.delivery.confirmations import send_confirmation
    from mailer.models import utcnow

    [pending] = add_readers(app, "confirm", 1, SubscriberStatus.PENDING)
    with app.app_context():
        db.session.execute(update(Subscriber).values(confirmation_requested_at=utcnow()))
        db.session.commit()
        subscriber_id = db.session.scalar(select(Subscriber.id))
        assert send_confirmation(subscriber_id) == "sent"
    verp = verp_of(outbox, pending)
    deliver(receiver, verp, sample("outlook.eml", verp=verp, reader=pending))
    assert status_of(app, pending) == SubscriberStatus.BOUNCED


def test_the_console_shows_bounces_and_an_editor_can_reactivate(
    app, console, outbox, receiver, monkeypatch
):
    hard, complainer, _fine = add_readers(app, "console", 3)
    add_article(app, "Console", "https://news.example.org/console-bounce")
    send_digest_here(app, monkeypatch)
    deliver(
        receiver, verp_of(outbox, hard), sample("exim.eml", verp=verp_of(outbox, hard), reader=hard)
    )
    [copy] = outbox.to(complainer)
    deliver(
        receiver,
        "bounces@news.example.org",
        sample(
            "arf.eml",
            verp=verp_of(outbox, complainer),
            reader=complainer,
            list_unsubscribe=copy["List-Unsubscribe"],
        ),
    )
    page = console.get("/editor/").get_data(as_text=True)
    assert "1</strong> bounced (33.33 %)" in page
    assert "1</strong> complained (33.33 %)" in page
    assert "0.3 %" in page  # one complaint in three is far over the line
    with app.app_context():
        hard_id = db.session.scalar(select(Subscriber.id).where(Subscriber.email == hard))
    history = console.get(f"/editor/subscribers/{hard_id}").get_data(as_text=True)
    assert "hard bounce 5.1.1" in history and "User unknown" in history
    assert "Re-activate" in history
    export = console.get("/editor/subscribers/export.csv").get_data(as_text=True)
    assert f"{hard},,bounced," in export
    assert f"{complainer},,unsubscribed," in export
    from tests.helpers import hidden_fields

    token = hidden_fields(history)["csrf_token"]
    done = console.post(
        f"/editor/subscribers/{hard_id}/reactivate",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "Active again" in done.get_data(as_text=True)
    assert status_of(app, hard) == SubscriberStatus.ACTIVE
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Bounce)) == 2  # history kept


def test_a_newer_weekly_digest_does_not_hide_the_daily_digests_bounces(
    app, console, outbox, receiver, monkeypatch
):
    from mailer.models import Frequency
    from tests.helpers import add_choosing_readers

    hard, _fine = add_readers(app, "daily", 2)
    add_choosing_readers(app, {"weekly@example.org": (None, Frequency.WEEKLY)})
    add_article(app, "Daily", "https://news.example.org/daily-bounce")
    daily = send_digest_here(app, monkeypatch)
    deliver(
        receiver, verp_of(outbox, hard), sample("exim.eml", verp=verp_of(outbox, hard), reader=hard)
    )
    weekly = make_digest_here(app, monkeypatch, frequency=Frequency.WEEKLY)
    with app.app_context():
        delivery.send_batch(weekly)
    outbox.wait_for("weekly@example.org")
    page = console.get("/editor/").get_data(as_text=True)
    assert f'The last weekly digest, <a href="/editor/digests/{weekly}">#{weekly}</a>' in page
    assert f'The last daily digest, <a href="/editor/digests/{daily}">#{daily}</a>' in page
    assert "1</strong> bounced (50.00 %)" in page  # the daily one's, under the newer weekly
    assert page.index(f"#{weekly}</a>") < page.index(f"#{daily}</a>")
