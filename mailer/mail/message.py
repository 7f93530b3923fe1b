"""What every mail carries, serialized once, with slots for the parts that differ per reader.

Every mail (a confirmation, a digest, a test) is built here: From, Subject,
Date, MIME-Version and a multipart/alternative body (text first, HTML last)
for all of them; List-Id, List-Unsubscribe-Post and Precedence for
newsletters; To, Message-ID and List-Unsubscribe per reader.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email import quoprimime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr

import idna

from mailer.mail.dkim import MessageSigner, canonical_lines, header_fields, signing_keys
from mailer.mail.render import RenderedEmail
from mailer.platform.settings import Settings

# CRLF line ends; long headers are folded only past 998 characters, because folding
# at 78 would turn List-Unsubscribe's long URIs into RFC 2047 encoded words that
# mailbox providers cannot parse.
POLICY = SMTP.clone(max_line_length=998)


def dot_stuff(piece: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with "." gets another; `piece` starts a line."""
    stuffed = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def subject_field(subject: str) -> bytes:
    """The Subject line: plain when it can be, else RFC 2047 encoded words of at most 75
    characters each, on folded lines (one long encoded word is what spam filters flag)."""
    if subject.isascii() and "=?" not in subject and len(subject) <= 900:
        return b"Subject: " + subject.encode("ascii") + b"\r\n"
    header = Header(subject, "utf-8", maxlinelen=76, header_name="Subject")
    return b"Subject: " + header.encode(linesep="\r\n").encode("ascii") + b"\r\n"


def ascii_address(address: str) -> str:
    """The address with an IDNA 2008 (punycode) domain, which every relay can carry.

    Python's own "idna" codec is IDNA 2003, which maps faß.de to fass.de: another
    domain. The idna package (UTS 46, non-transitional) keeps the ß, as browsers do.
    """
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


def list_id(settings: Settings) -> str:
    return f"{settings.list_name} <{settings.list_id}>"


def newsletter_headers(settings: Settings, digest_id: int | None = None) -> dict[str, str]:
    """What every newsletter carries besides its reader's own List-Unsubscribe."""
    headers = {
        "List-Id": list_id(settings),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
    }
    if digest_id is not None:
        # Gmail's feedback loop reports complaints per value: campaign, list, sender.
        headers["Feedback-ID"] = (
            f"{digest_id}:{settings.list_id}:mailer:{settings.feedback_id_sender}"
        )
    return headers


def list_unsubscribe(settings: Settings, url: str, token: str) -> str:
    """The reader's List-Unsubscribe: the one-click HTTPS link, and mailto: as a fallback."""
    mailto = f"mailto:{settings.unsubscribe_mailbox}?subject=unsubscribe%20{token}"
    return f"<{url}>, <{mailto}>"


def one_off_message_id(settings: Settings) -> str:
    return make_msgid(domain=settings.sending_domain)


class PreparedMessage:
    """A message serialized once, with slots for the per-reader parts.

    Building an EmailMessage per reader costs milliseconds; this costs
    microseconds: the bodies are quoted-printable-encoded once, around the
    slots (placeholder strings in the rendered text), and each reader's values
    are encoded and spliced in on their own soft-broken lines, so the decoded
    text is exactly what was rendered with the values in place.
    """

    def __init__(
        self,
        settings: Settings,
        rendered: RenderedEmail,
        *,
        slots: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        self.slots = tuple(slots)
        boundary = f"=_mailer_{make_msgid().strip('<>').split('@')[0]}"
        template = EmailMessage(policy=POLICY)
        display, sender = parseaddr(settings.from_address)
        template["From"] = Address(display_name=display, addr_spec=sender)
        template["Date"] = formatdate(localtime=False)
        template["MIME-Version"] = "1.0"
        template["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        for name, value in (headers or {}).items():
            template[name] = value
        # The policy folds and RFC 2047-encodes the shared headers once.
        self.head = (
            template.as_bytes(policy=POLICY).split(b"\r\n\r\n", 1)[0]
            + b"\r\n"
            + subject_field(rendered.subject)
        )
        self.parts: list[bytes | int] = [
            f"--{boundary}\r\n".encode(),
            *self._part("plain", rendered.text),
            f"--{boundary}\r\n".encode(),
            *self._part("html", rendered.html),
            f"--{boundary}--\r\n".encode(),
        ]
        keys = signing_keys(settings)
        self.signer = MessageSigner(keys, header_fields(self.head)) if keys else None
        # The body as DKIM reads it, canonicalized once; readers' values per message.
        self.canonical_parts = [
            part if isinstance(part, int) else canonical_lines(part) for part in self.parts
        ]
        # And as the DATA command carries it, stuffed once: every piece starts a line.
        self.stuffed_head = dot_stuff(self.head)
        self.stuffed_parts = [
            part if isinstance(part, int) else dot_stuff(part) for part in self.parts
        ]

    @staticmethod
    def _qp(text: str) -> bytes:
        latin = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
        return quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("latin-1")

    def _part(self, subtype: str, text: str) -> list[bytes | int]:
        """The part's encoded segments, with a slot's index where a reader's value goes."""
        header = (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        pieces: list[bytes | int] = [header]
        if not self.slots:
            segments = [text]
        else:
            pattern = "(" + "|".join(re.escape(slot) for slot in self.slots) + ")"
            segments = re.split(pattern, text)
        # re.split with a group alternates text, slot, text, slot, ..., text.
        for index, segment in enumerate(segments):
            if index % 2:
                pieces.append(self.slots.index(segment))
                continue
            encoded = self._qp(segment) if segment else b""
            if index < len(segments) - 1:
                # A soft line break on each side keeps the value whole on decoding.
                if encoded and not encoded.endswith(b"\r\n"):
                    encoded += b"=\r\n"
                pieces.append(encoded)
            else:
                pieces.append(encoded + (b"" if encoded.endswith(b"\r\n") else b"\r\n"))
        return pieces

    def render(
        self, *, headers: dict[str, str], values: Sequence[str] = (), for_smtp: bool = False
    ) -> bytes:
        """The bytes for one reader: their headers (plain ASCII, one line each) and values.

        `for_smtp`: dot-stuffed for the DATA command (RFC 5321 4.5.2), the shared parts
        stuffed once at preparation, only the reader's few lines per message.
        """
        if len(values) != len(self.slots):
            raise ValueError(f"{len(self.slots)} slot values needed, {len(values)} given")
        if any("\r" in v or "\n" in v for v in (*values, *headers.values())):
            raise ValueError("header values and slot values must be single lines")
        encoded = [self._qp(value) + b"=\r\n" for value in values]
        lines = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers.items())
        signature = self._signature(headers, encoded)
        if for_smtp:
            stuffed = [dot_stuff(value) for value in encoded]
            body = b"".join(
                stuffed[part] if isinstance(part, int) else part for part in self.stuffed_parts
            )
            return signature + self.stuffed_head + dot_stuff(lines) + b"\r\n" + body
        body = b"".join(encoded[part] if isinstance(part, int) else part for part in self.parts)
        return signature + self.head + lines + b"\r\n" + body

    def _signature(self, headers: dict[str, str], encoded: list[bytes]) -> bytes:
        signature = b""
        if self.signer is not None:
            reader_fields = [(n.encode(), b" " + v.encode()) for n, v in headers.items()]
            canonical_values = [canonical_lines(value) for value in encoded]
            signature = self.signer.signature_fields(
                reader_fields,
                [
                    canonical_values[part] if isinstance(part, int) else part
                    for part in self.canonical_parts
                ],
            )
        return signature
