"""Bounces and complaints: real-world-shaped samples through the SMTP receiver and the CLI."""

from __future__ import annotations

import re
import smtplib
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer import delivery
from mailer.bounces.receiver import BounceController
from mailer.models import Bounce, BounceKind, Delivery, Subscriber, SubscriberStatus, Suppression
from mailer.platform.db import db
from mailer.subscribers.records import address_hash
from tests.conftest import free_port
from tests.helpers import add_article, add_readers, make_digest_here, wait_until

SAMPLES = Path(__file__).parent / "bounces"
EXPECTED = {
    "rfc3464_failed.eml": "hard",
    "rfc3464_delayed.eml": "soft",
    "gmail.eml": "hard",
    "outlook.eml": "hard",
    "yahoo.eml": "hard",
    # 552 5.2.2 mailbox full: permanent, but it says nothing of the address (issue 19).
    "postfix_full.eml": "soft",
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


@contextmanager
def running_receiver(app) -> Iterator[BounceController]:
    """The real receiver, with the app's settings as they are now (caps included)."""
    controller = BounceController(app, "127.0.0.1", free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def receiver(app):
    with running_receiver(app) as controller:
        yield controller


def deliver(receiver, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as smtp:
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


def test_tampered_and_foreign_tokens_are_refused_at_rcpt_and_change_nothing(
    app, outbox, receiver, monkeypatch
):
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
    for address in (tampered, foreign):
        # Refused at RCPT, from the envelope alone: the body is never sent, let alone read.
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            deliver(receiver, address, sample("gmail.eml", verp=address, reader=reader))
        assert refused.value.recipients[address][0] == 550
    # The bare address (feedback loops) takes mail; a token only in the body counts for nothing.
    bare = "bounces@news.example.org"
    deliver(receiver, bare, sample("gmail.eml", verp=tampered, reader=reader))
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


# --- hostile clients (issue 18): each costs the receiver little, and changes nothing ----


# How aiosmtpd answers an exception it was left with: "500 Error: (RecursionError) ...".
RAISED = re.compile(rb"\(\w*(Error|Exception)\)")


def deep_mime(levels: int) -> bytes:
    """A message of `levels` multiparts, each inside the last."""
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n - 1, n)
        for n in range(1, levels)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(levels)))
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + b"--b%d\r\nContent-Type: text/plain\r\n\r\n550 5.1.1 User unknown\r\n" % (levels - 1)
        + closing
    )


def many_parts(count: int) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\n\r\n" * count
        + b"--b--\r\n"
    )


def padded(raw: bytes, size: int, width: int = 76) -> bytes:
    """A bounce grown to `size` bytes by its returned message, in lines of `width`."""
    line = b"x" * width + b"\r\n"
    return raw + line * ((size - len(raw)) // len(line))


def one_sent_reader(app, outbox, monkeypatch, prefix: str) -> tuple[str, str]:
    [reader] = add_readers(app, prefix, 1)
    add_article(app, prefix, f"https://news.example.org/{prefix}")
    send_digest_here(app, monkeypatch)
    return reader, verp_of(outbox, reader)


def bounce_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Bounce))


def forged_verp(n: int) -> str:
    return f"bounces+{'a' * 20}{n:06d}@news.example.org"


def test_a_hundred_recipients_of_a_megabyte_message_are_read_once(
    app, outbox, receiver, monkeypatch
):
    reader, verp = one_sent_reader(app, outbox, monkeypatch, "hundred")
    # A plain-text bounce (flufl.bounce's detectors read it line by line) of short lines.
    raw = padded(sample("exim.eml", verp=verp, reader=reader), 1024 * 1024, width=18)
    # One real token (any reader finds their own in Return-Path) said 50 times, in two
    # cases, and 50 forged ones. Before, each was accepted and the megabyte read again for
    # each: minutes of CPU.
    recipients = [verp.upper() if n % 2 else verp for n in range(50)]
    recipients += [forged_verp(n) for n in range(50)]
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=60) as smtp:
        refused = smtp.sendmail("", recipients, raw)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert {address for address, (code, _) in refused.items() if code == 550} == set(
        recipients[50:]
    )
    assert bounce_kinds(app, reader) == ["hard"]
    assert status_of(app, reader) == SubscriberStatus.BOUNCED


def test_recipients_are_capped_per_message(app, receiver):
    from mailer.mail.verp import MailKind, MailRef, envelope_sender

    with app.app_context():
        # Valid tokens, as a stranger could not make them: the cap holds even for those.
        addresses = [envelope_sender(MailRef(MailKind.DELIVERY, 1000 + n)) for n in range(25)]
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("")
        codes = [smtp.rcpt(address)[0] for address in addresses]
    assert codes == [250] * 20 + [452] * 5  # RFC 5321: the client sends the rest later


@pytest.mark.parametrize(
    ("shape", "raw"),
    [
        ("200,000 empty MIME parts", many_parts(200_000)),
        ("MIME nested 3,000 deep", deep_mime(3_000)),
        ("3 MB", padded(b"From: MAILER-DAEMON@mx.example.net\r\n\r\n", 3 * 1024 * 1024)),
    ],
)
def test_a_message_too_large_or_too_complex_is_refused_quickly(
    app, outbox, receiver, monkeypatch, shape, raw
):
    reader, verp = one_sent_reader(app, outbox, monkeypatch, "complex")
    started = time.monotonic()
    with (
        smtplib.SMTP("127.0.0.1", receiver.port, timeout=60) as smtp,
        # Over the size it says in MAIL FROM, it is refused there (SIZE, RFC 1870).
        pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as refused,
    ):
        smtp.sendmail("", [verp], raw)
    elapsed = time.monotonic() - started
    assert refused.value.smtp_code in {552, 554}, refused.value
    assert not RAISED.search(refused.value.smtp_error), refused.value
    assert elapsed < 5, f"{shape} took {elapsed:.1f} s"
    assert bounce_rows(app) == 0
    assert status_of(app, reader) == SubscriberStatus.ACTIVE


def test_process_bounce_drops_mime_nested_3000_deep_and_exits_0(app, outbox, monkeypatch):
    reader, verp = one_sent_reader(app, outbox, monkeypatch, "pipe")
    result = app.test_cli_runner().invoke(
        args=["process-bounce", "--recipient", verp], input=deep_mime(3_000)
    )
    # 0, not 1 (a permanent failure, for which Postfix would mail a notice to the sender),
    # nor 75 (retried for days): dropped, said once on standard error.
    assert result.exit_code == 0, result.output
    assert "dropped" in result.stderr and "MAILER_BOUNCE_MAX_DEPTH" in result.stderr
    assert bounce_rows(app) == 0
    assert status_of(app, reader) == SubscriberStatus.ACTIVE


def test_an_error_inside_handling_is_answered_without_its_text(
    app, outbox, monkeypatch, settings_override, caplog
):
    _reader, verp = one_sent_reader(app, outbox, monkeypatch, "failing")
    # With its guards lifted the parser itself fails (Python's recursion limit): a failure
    # of ours, whatever its cause, that must be logged and answered in general terms.
    # Beyond what start-up allows (MAILER_BOUNCE_MAX_DEPTH is at most 200), so that Python's
    # parser itself fails: unvalidated on purpose.
    lifted = app.config["MAILER"].model_copy(
        update={"bounce_max_depth": 10_000, "bounce_max_parts": 10_000}
    )
    monkeypatch.setitem(app.config, "MAILER", lifted)
    with (
        running_receiver(app) as controller,
        smtplib.SMTP("127.0.0.1", controller.port, timeout=60) as smtp,
        pytest.raises(smtplib.SMTPDataError) as failed,
    ):
        smtp.sendmail("", [verp], deep_mime(3_000))
    assert failed.value.smtp_code == 451  # the sender keeps it and tries again
    assert not RAISED.search(failed.value.smtp_error), failed.value
    assert b"recursion" not in failed.value.smtp_error.lower()
    assert any(
        record.exc_info and record.exc_info[0] is RecursionError for record in caplog.records
    )
    pipe = app.test_cli_runner().invoke(
        args=["process-bounce", "--recipient", verp], input=deep_mime(3_000)
    )
    assert pipe.exit_code == 75, pipe.output  # EX_TEMPFAIL: the MTA keeps it
    assert "ecursion" not in pipe.output
    assert bounce_rows(app) == 0


def greeting(sock: socket.socket) -> bytes:
    return sock.makefile("rb").readline()


def test_sessions_over_the_cap_of_one_address_are_refused(app, settings_override):
    settings_override(bounce_sessions_per_address=5)
    with running_receiver(app) as controller:
        # The controller's own check that it serves (a connection at start) has ended.
        wait_until(lambda: not controller.sessions, timeout=10, message="start-up session")
        sockets: list[socket.socket] = []
        try:
            for _ in range(300):
                sockets.append(socket.create_connection(("127.0.0.1", controller.port), 10))
            replies = [greeting(sock)[:3] for sock in sockets]
            assert replies.count(b"220") == 5
            assert replies.count(b"421") == 295
        finally:
            for sock in sockets:
                sock.close()
        # Once they are gone, their places are free again.
        wait_until(lambda: not controller.sessions, timeout=10, message="sessions not freed")
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as smtp:
            assert smtp.noop()[0] == 250


def test_idle_sessions_time_out(app, settings_override):
    settings_override(bounce_session_timeout=1)
    with running_receiver(app) as controller:
        sockets = [socket.create_connection(("127.0.0.1", controller.port), 10) for _ in range(5)]
        try:
            assert [greeting(sock)[:3] for sock in sockets] == [b"220"] * 5
            # They say nothing more: the server ends each after its timeout, well before
            # the test's own deadline.
            deadline = time.monotonic() + 10
            for sock in sockets:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                assert sock.recv(1024) == b""
        finally:
            for sock in sockets:
                sock.close()


def test_a_session_that_only_talks_is_cut_off(receiver):
    with smtplib.SMTP("127.0.0.1", receiver.port, timeout=30) as smtp:
        replies = [smtp.noop()[0] for _ in range(10)]
        assert replies == [250] * 10
        assert smtp.noop()[0] == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


def test_one_mail_adds_one_bounce_of_each_kind_however_often_it_comes_back(
    app, outbox, receiver, monkeypatch
):
    reader, verp = one_sent_reader(app, outbox, monkeypatch, "replay")
    for _ in range(3):
        deliver(receiver, verp, sample("rfc3464_delayed.eml", verp=verp, reader=reader))
    for _ in range(20):
        deliver(receiver, verp, sample("gmail.eml", verp=verp, reader=reader))
    repeat = app.test_cli_runner().invoke(
        args=["process-bounce", "--recipient", verp],
        input=sample("gmail.eml", verp=verp, reader=reader),
    )
    assert repeat.exit_code == 0 and repeat.output.strip() == "duplicate"
    # A delay and then a failure are two facts about the mail; repeats of either are not.
    assert sorted(bounce_kinds(app, reader)) == ["hard", "soft"]


def test_bounces_explain_says_what_a_bounce_would_do_and_changes_nothing(
    app, outbox, monkeypatch, tmp_path
):
    import json

    target, bystander = add_readers(app, "explain", 2)
    add_article(app, "Explained", "https://news.example.org/explained")
    send_digest_here(app, monkeypatch)
    files = []
    for name in ("rfc3464_failed.eml", "postfix_full.eml", "autoreply.eml"):
        path = tmp_path / name
        path.write_bytes(sample(name, verp=verp_of(outbox, target), reader=bystander))
        files.append(str(path))
    result = app.test_cli_runner().invoke(args=["bounces", "explain", "--json", *files])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [line["file"] for line in lines] == files  # in the order given
    assert [line["decision"] for line in lines] == ["bounced", "soft", "none"]
    assert lines[0]["reason"] == "user_unknown" and lines[0]["reader"] == target
    assert lines[1]["reason"] == "mailbox_full" and lines[1]["status"] == "5.2.2"
    assert lines[0]["domain"] == "example.org"
    assert set(lines[0]) == {"file", "reason", "status", "reply", "domain", "decision", "reader"}
    # Nothing changed: the reader is active and no bounce was kept.
    assert status_of(app, target) == SubscriberStatus.ACTIVE
    assert bounce_kinds(app, target) == []


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
