"""Messages serialized once and spliced per reader decode to exactly what was rendered."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from mailer.mail.message import PreparedMessage
from mailer.mail.render import RenderedEmail
from mailer.platform.settings import load_settings

SETTINGS = load_settings(
    environ={
        "MAILER_SECRET_KEY": "a-long-enough-secret-key",
        "MAILER_FROM": "Nachrichten <n@example.org>",
    }
)
SLOT = "__SLOT__"
LINK = "https://news.example.org/unsubscribe/" + "Mw.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_" * 2


@pytest.mark.parametrize(
    "text",
    [
        f"Hello\n\nUnsubscribe: {SLOT}\n",
        f"{SLOT} at the very start, and at the end: {SLOT}",
        "“Turkey” — Çavuşoğlu, Erdoğan " * 40 + f'<a href="{SLOT}">unsubscribe</a>' + " é" * 100,
        "a line that is exactly long " * 10 + SLOT + "trailing spaces   \nnext line\n",
        "no slot at all, only ünïcode and = signs = = =\n",
    ],
)
def test_the_spliced_message_decodes_to_the_rendered_text(text):
    prepared = PreparedMessage(
        SETTINGS,
        RenderedEmail("“Turkey” — Çavuşoğlu, Erdoğan", text, f"<p>{text}</p>"),
        slots=(SLOT,),
        headers={"List-Id": "Nachrichten <list.example.org>"},
    )
    data = prepared.render(
        headers={
            "To": "reader@example.org",
            "Message-ID": "<1@example.org>",
            "List-Unsubscribe": f"<{LINK}>",
        },
        values=(LINK,),
    )
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = message_from_bytes(data, policy=policy.default)
    assert str(message["Subject"]) == "“Turkey” — Çavuşoğlu, Erdoğan"
    assert message["To"] == "reader@example.org"
    assert message["List-Unsubscribe"] == f"<{LINK}>"
    assert message.get_content_type() == "multipart/alternative"
    # MIME text has CRLF line ends; compare the text itself.
    plain = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    expected = text.replace(SLOT, LINK)
    assert plain.rstrip("\n") == expected.rstrip("\n")
    assert html.rstrip("\n") == f"<p>{expected}</p>".rstrip("\n")


def test_a_header_with_a_line_break_is_refused():
    prepared = PreparedMessage(SETTINGS, RenderedEmail("s", "t", "h"), slots=(SLOT,))
    with pytest.raises(ValueError, match="single lines"):
        prepared.render(headers={"To": "a@example.org\r\nBcc: x@example.org"}, values=(LINK,))


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_lines_that_start_with_a_dot_arrive_whole(app, outbox, pipelining):
    """Dot-stuffing (RFC 5321 4.5.2) is done once per prepared message, not by smtplib."""
    from mailer import mail as emails
    from mailer.mail.message import PreparedMessage as Prepared

    outbox.pipelining = pipelining
    text = ".starts with a dot\n..two dots\n.\nnot the end\n." + SLOT + "\nlast"
    with app.app_context():
        settings = app.config["MAILER"]
        prepared = Prepared(settings, RenderedEmail("Dots", text, f"<p>{text}</p>"), slots=(SLOT,))
        data = prepared.render(headers={"To": "dots@example.org"}, values=(".x",), for_smtp=True)
        emails.send(emails.OutgoingMail("dots@example.org", data))
        emails.send(emails.OutgoingMail("dots@example.org", data))  # a reused session
    [first, second] = outbox.wait_for("dots@example.org", count=2)
    expected = text.replace(SLOT, ".x")
    for message in (first, second):
        plain = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
        assert plain.rstrip("\n") == expected


def test_a_refused_recipient_leaves_the_session_ready_for_the_next(app, outbox):
    from mailer import mail as emails
    from mailer.mail.message import PreparedMessage as Prepared
    from mailer.mail.smtp import PermanentFailure, TemporaryFailure

    outbox.refuse("no@example.org", "550 5.1.1 no such user")
    outbox.refuse("later@example.org", "451 4.7.1 try later", times=1)
    with app.app_context():
        prepared = Prepared(app.config["MAILER"], RenderedEmail("s", "t", "<p>h</p>"))
        mail = lambda to: emails.OutgoingMail(  # noqa: E731
            to, prepared.render(headers={"To": to}, for_smtp=True)
        )
        with pytest.raises(PermanentFailure, match=r"550 5\.1\.1"):
            emails.send(mail("no@example.org"))
        with pytest.raises(TemporaryFailure, match=r"451 4\.7\.1"):
            emails.send(mail("later@example.org"))
        emails.send(mail("yes@example.org"))
        emails.send(mail("later@example.org"))
    assert len(outbox.wait_for("yes@example.org")) == 1
    assert len(outbox.wait_for("later@example.org")) == 1
    assert outbox.to("no@example.org") == []
