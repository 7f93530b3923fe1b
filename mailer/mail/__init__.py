"""Every mail mailer sends, and the one path that builds and sends them.

One small function per mail gathers the context of its templates
(`templates/email/<name>/{subject.txt,body.txt,body.html}`) and returns the
mail ready to send. `message.py` sets what every mail carries and what every
newsletter carries; `smtp.py` is the only place that talks SMTP. A newsletter
(the digest, and the editor's test of it) is rendered once, serialized once per
batch, and only each reader's headers and links are spliced in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from flask import current_app

from mailer.mail import slots
from mailer.mail.links import (
    archive_url,
    confirm_url,
    external_url,
    test_preferences_url,
    test_unsubscribe_url,
)
from mailer.mail.message import (
    PreparedMessage,
    ascii_address,
    list_unsubscribe,
    newsletter_headers,
    one_off_message_id,
)
from mailer.mail.render import RenderedEmail, render_email, render_newsletter
from mailer.mail.smtp import smtp_connection
from mailer.mail.tokens import make_preferences_token, make_unsubscribe_token
from mailer.mail.verp import MailKind, MailRef, envelope_sender, opaque_message_id
from mailer.models import Digest, Frequency, Subscriber
from mailer.platform.settings import Settings

log = logging.getLogger(__name__)

# (subscriber id, link key): what a reader's own links are made of.
ReaderLinkKey = tuple[int, str]
# Gmail clips HTML bodies over about 102 KB.
HTML_LIMIT_BYTES = 100 * 1024
TEST_MARK = "[TEST] "


@dataclass(frozen=True)
class OutgoingMail:
    recipient: str  # the envelope recipient, ASCII
    data: bytes  # the message as DATA carries it: CRLF, dot-stuffed, signed if DKIM is set up
    sender: str | None = None  # the envelope sender (VERP); None: the From address


def send(mail: OutgoingMail) -> None:
    """Sends one mail over this process's relay connection; raises the smtp failures."""
    smtp_connection().send(mail.recipient, mail.data, sender=mail.sender)


def _settings() -> Settings:
    return current_app.config["MAILER"]


def _one_off(
    rendered: RenderedEmail, to: str, headers: dict[str, str], bounces_for: MailRef | None
) -> OutgoingMail:
    settings = _settings()
    recipient = ascii_address(to)
    data = PreparedMessage(settings, rendered, headers=headers).render(
        headers={"To": recipient, "Message-ID": one_off_message_id(settings)}, for_smtp=True
    )
    sender = envelope_sender(bounces_for, settings) if bounces_for else None
    return OutgoingMail(recipient, data, sender)


# --- the confirmation -------------------------------------------------------


def confirmation(subscriber: Subscriber) -> OutgoingMail:
    settings = _settings()
    # No name: anyone can type anyone's address and any words as the name, and the
    # confirmation is the one mail that goes to an address nobody vouched for yet.
    rendered = render_email(
        "confirm",
        confirm_url=confirm_url(subscriber.id, subscriber.link_key),
        list_name=settings.list_name,
        max_age_days=settings.confirm_max_age_days,
        consent_text=subscriber.consent_text,
    )
    return _one_off(
        rendered,
        subscriber.email,
        {"Auto-Submitted": "auto-generated"},
        MailRef(MailKind.CONFIRMATION, subscriber.id),
    )


# --- the welcome, once a reader confirmed -------------------------------------


def welcome(subscriber: Subscriber) -> OutgoingMail:
    settings = _settings()
    rendered = render_newsletter(
        "welcome",
        name=subscriber.name,
        list_name=settings.list_name,
        site_url=settings.site_url,
        site_name=settings.site_label,
        postal_address=settings.postal_address,
        archive_url=archive_url(),
        weekly=subscriber.frequency == Frequency.WEEKLY,
    )
    return Newsletter(rendered).copy_for(
        subscriber.email,
        (subscriber.id, subscriber.link_key),
        one_off_message_id(settings),
        MailRef(MailKind.CONFIRMATION, subscriber.id),
    )


# --- the digest ---------------------------------------------------------------


def stored_digest(digest_row: Digest) -> RenderedEmail:
    return RenderedEmail(
        digest_row.subject, digest_row.text_body, digest_row.html_body, digest_row.slot_marker
    )


def example_copy(rendered: RenderedEmail) -> RenderedEmail:
    """The mail as an editor previews it: a test copy's links where each reader's go."""
    links = {
        slots.Slot.UNSUBSCRIBE: test_unsubscribe_url(),
        slots.Slot.PREFERENCES: test_preferences_url(),
    }
    return RenderedEmail(
        rendered.subject,
        slots.fill(rendered.text, rendered.slot_marker, links),
        slots.fill(rendered.html, rendered.slot_marker, links),
    )


class Newsletter:
    """Each reader's copy of one digest, spliced from the digest serialized once."""

    def __init__(
        self,
        rendered: RenderedEmail,
        *,
        digest_id: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if rendered.slot_marker is None:
            raise ValueError("a newsletter is rendered with slots for its readers' links")
        self.settings = _settings()
        # Built once: each reader's link is this and their token (URL-safe as it is).
        self.unsubscribe_prefix = external_url("public.unsubscribe", token="-")[:-1]  # noqa: S106
        self.preferences_prefix = external_url("public.preferences", token="-")[:-1]  # noqa: S106
        self.prepared = PreparedMessage(
            self.settings,
            rendered,
            # Found by this render's own marker: no article could hold it.
            slots=slots.placeholders(rendered.slot_marker),
            headers={**newsletter_headers(self.settings, digest_id), **(headers or {})},
        )

    def copy_for(
        self,
        email: str,
        reader: ReaderLinkKey | None,
        message_id: str,
        bounces_for: MailRef | None = None,
    ) -> OutgoingMail:
        """The reader's copy; without a reader, a test copy whose link says so."""
        if reader is None:
            token, url, choices = "test", test_unsubscribe_url(), test_preferences_url()
        else:
            token = make_unsubscribe_token(*reader)
            url = self.unsubscribe_prefix + token
            choices = self.preferences_prefix + make_preferences_token(*reader)
        recipient = ascii_address(email)
        data = self.prepared.render(
            headers={
                "To": recipient,
                "Message-ID": message_id,
                "List-Unsubscribe": list_unsubscribe(self.settings, url, token),
            },
            values=(url, choices),  # in the order of slots.Slot
            for_smtp=True,
        )
        sender = envelope_sender(bounces_for, self.settings) if bounces_for else None
        return OutgoingMail(recipient, data, sender)


def digest_message_id(settings: Settings, delivery_id: int) -> str:
    # Unique per row, derived from it, and telling nobody how many rows there are.
    return opaque_message_id(settings, "delivery", delivery_id)


# --- the editor's test of the next digest -------------------------------------


def test_digest(
    rendered: RenderedEmail, address: str, reader: ReaderLinkKey | None, requested_by: str
) -> OutgoingMail:
    """The reader's mail, headers included, marked [TEST]; its link works for a reader's
    address and plainly says it is a test for any other."""
    marked = replace(rendered, subject=TEST_MARK + rendered.subject)
    newsletter = Newsletter(marked, headers={"X-Mailer-Test": f"requested by {requested_by}"})
    return newsletter.copy_for(address, reader, one_off_message_id(_settings()))
