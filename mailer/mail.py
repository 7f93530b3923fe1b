"""Builds email messages from templates and sends them over a reused SMTP connection."""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr

from flask import current_app

from mailer.config import Settings

# CRLF line ends; long headers are folded only past 998 characters, because folding
# at 78 would turn List-Unsubscribe's long URIs into RFC 2047 encoded words that
# mailbox providers cannot parse.
POLICY = SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class DeliveryError(Exception):
    """A message was not accepted; `reply` is what the server said."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class PermanentFailure(DeliveryError):
    """5xx: the server will never take this message; do not retry."""


class TemporaryFailure(DeliveryError):
    """4xx or a broken connection: try again later."""


class ConnectFailure(TemporaryFailure):
    """No session with the relay at all: the message was never attempted."""


def render_email(template: str, **context: object) -> RenderedEmail:
    """Renders templates/email/<template>/{subject.txt,body.txt,body.html}."""
    env = current_app.jinja_env
    subject = env.get_template(f"email/{template}/subject.txt").render(**context)
    return RenderedEmail(
        # A subject is one line whatever the template or its data hold.
        subject=" ".join(subject.split()),
        text=env.get_template(f"email/{template}/body.txt").render(**context),
        html=env.get_template(f"email/{template}/body.html").render(**context),
    )


def ascii_address(address: str) -> str:
    """The address with an IDNA (punycode) domain, which every relay can carry."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def build_message(
    settings: Settings,
    *,
    to: str,
    rendered: RenderedEmail,
    from_address: str | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message, text first. Header values with CR/LF raise ValueError."""
    message = EmailMessage(policy=POLICY)
    display, sender = parseaddr(from_address or settings.from_address)
    message["From"] = Address(display_name=display, addr_spec=sender)
    message["To"] = ascii_address(to)
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain=settings.sending_domain)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


class SMTPConnection:
    """One SMTP session reused for many messages; reconnects when it went stale."""

    # A connection idle longer than this is checked with NOOP before use.
    IDLE_CHECK_SECONDS = 30

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = parseaddr(settings.from_address)[1]  # the envelope sender, parsed once
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectFailure(f"cannot connect to {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        return smtp

    def _ready(self) -> smtplib.SMTP:
        if self._smtp is not None and time.monotonic() - self._last_used > self.IDLE_CHECK_SECONDS:
            try:
                self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                self.close()
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def send(self, message: EmailMessage) -> None:
        """Sends one message to its To address; raises Permanent/TemporaryFailure."""
        self.send_bytes(str(message["To"]), message.as_bytes(policy=POLICY))

    def send_bytes(self, recipient: str, data: bytes) -> None:
        """Sends a serialized message (CRLF line ends) to one recipient."""
        smtp = self._ready()
        try:
            smtp.sendmail(self.sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients[recipient]
            raise _failure(code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the server is closing the session
                self.close()
            raise _failure(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise TemporaryFailure(f"connection lost: {exc}") from exc
        finally:
            self._last_used = time.monotonic()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None


def _failure(code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    error_class = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return error_class(f"{code} {text}")


_connections: dict[tuple[str, int, str], SMTPConnection] = {}


def smtp_connection() -> SMTPConnection:
    """This process's connection to the configured relay (one per worker process)."""
    settings: Settings = current_app.config["MAILER"]
    key = (settings.smtp_host, settings.smtp_port, settings.smtp_username)
    if key not in _connections:
        _connections[key] = SMTPConnection(settings)
    return _connections[key]


class PreparedMessage:
    """A message serialized once, with slots for the per-reader parts.

    Building an EmailMessage per reader costs milliseconds; this costs
    microseconds: the bodies are quoted-printable-encoded once, around the
    placeholder, and each reader's link is encoded and spliced in on its own
    soft-broken line, so the decoded text is exactly what was rendered.
    """

    def __init__(
        self,
        settings: Settings,
        rendered: RenderedEmail,
        placeholder: str,
        headers: dict[str, str],
    ) -> None:
        boundary = f"=_mailer_{make_msgid().strip('<>').split('@')[0]}"
        template = EmailMessage(policy=POLICY)
        display, sender = parseaddr(settings.from_address)
        template["From"] = Address(display_name=display, addr_spec=sender)
        template["Subject"] = rendered.subject
        template["Date"] = formatdate(localtime=False)
        template["MIME-Version"] = "1.0"
        template["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        for name, value in headers.items():
            template[name] = value
        # The policy folds and RFC 2047-encodes the shared headers once.
        self.head = template.as_bytes(policy=POLICY).split(b"\r\n\r\n", 1)[0] + b"\r\n"
        self.parts = [
            f"--{boundary}\r\n".encode(),
            *self._part("plain", rendered.text, placeholder),
            f"--{boundary}\r\n".encode(),
            *self._part("html", rendered.html, placeholder),
            f"--{boundary}--\r\n".encode(),
        ]

    @staticmethod
    def _qp(text: str) -> bytes:
        latin = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
        return quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("latin-1")

    def _part(self, subtype: str, text: str, placeholder: str) -> list[bytes | None]:
        """The part's encoded segments, with None where the reader's link goes."""
        header = (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode()
        pieces: list[bytes | None] = [header]
        segments = text.split(placeholder)
        for index, segment in enumerate(segments):
            encoded = self._qp(segment) if segment else b""
            if index < len(segments) - 1:
                # A soft line break on each side keeps the link whole on decoding.
                if encoded and not encoded.endswith(b"\r\n"):
                    encoded += b"=\r\n"
                pieces += [encoded, None]
            else:
                pieces.append(encoded + (b"" if encoded.endswith(b"\r\n") else b"\r\n"))
        return pieces

    def render(self, *, headers: dict[str, str], link: str) -> bytes:
        """The bytes for one reader: their headers (plain ASCII, one line each) and link."""
        encoded_link = self._qp(link) + b"=\r\n"
        if any("\r" in v or "\n" in v for v in (link, *headers.values())):
            raise ValueError("header values and links must be single lines")
        lines = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in headers.items())
        body = b"".join(encoded_link if part is None else part for part in self.parts)
        return self.head + lines + b"\r\n" + body
