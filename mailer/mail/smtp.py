"""The one place that talks SMTP: a reused connection per worker process, and its failures."""

from __future__ import annotations

import math
import smtplib
import socket
import time
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from flask import current_app

from mailer.platform.settings import Settings


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


class _ReplyReader:
    """What smtplib reads replies through: a line at a time, each whole reply within a
    deadline. A socket timeout bounds each read only, so a relay trickling a reply a
    byte at a time would otherwise hold the worker for as long as it liked."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.deadline = math.inf

    def readline(self, limit: int = -1) -> bytes:
        limit = limit if limit > 0 else 1 << 20
        while True:
            end = self.buffer.find(b"\n", 0, limit)
            if end >= 0 or len(self.buffer) >= limit:
                cut = end + 1 if end >= 0 else limit
                line = bytes(self.buffer[:cut])
                del self.buffer[:cut]
                return line
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                # An OSError: smtplib closes the session and says it was disconnected.
                raise TimeoutError("the relay's reply took longer than MAILER_SMTP_TIMEOUT")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                line = bytes(self.buffer)
                self.buffer.clear()
                return line
            self.buffer += chunk

    def close(self) -> None:
        self.buffer.clear()


class _TimedSMTP(smtplib.SMTP):
    """smtplib's client with every reply and write within `timeout`, and all of one
    message's exchange within `exchange_deadline` (Settings.smtp_transaction_seconds)."""

    exchange_deadline = math.inf

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("not connected")
        if not isinstance(self.file, _ReplyReader) or self.file.sock is not self.sock:
            self.file = _ReplyReader(self.sock)  # anew after STARTTLS wraps the socket
        self.file.deadline = min(time.monotonic() + self.timeout, self.exchange_deadline)
        return super().getreply()

    def send(self, s: Any) -> None:
        if self.sock is not None:
            left = self.exchange_deadline - time.monotonic()
            self.sock.settimeout(max(0.001, min(self.timeout, left)))
        super().send(s)

    def start_exchange(self, seconds: float) -> None:
        self.exchange_deadline = time.monotonic() + seconds


class SMTPConnection:
    """One SMTP session reused for many messages; reconnects when it went stale."""

    # A connection idle longer than this is checked with NOOP before use.
    IDLE_CHECK_SECONDS = 30

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = parseaddr(settings.from_address)[1]  # the envelope sender, parsed once
        self._smtp: _TimedSMTP | None = None
        self._last_used = 0.0
        self.pipelining = False  # what the relay said to EHLO

    def _connect(self) -> _TimedSMTP:
        s = self.settings
        try:
            smtp = _TimedSMTP(timeout=s.smtp_timeout)
            smtp.start_exchange(s.smtp_transaction_seconds)  # connecting is one exchange
            code, banner = smtp.connect(s.smtp_host, s.smtp_port)
            if code != 220:
                smtp.close()
                raise smtplib.SMTPConnectError(code, banner)
            smtp.ehlo()
            if s.smtp_starttls:
                smtp.starttls()
                smtp.ehlo()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise ConnectFailure(f"cannot connect to {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        self.pipelining = smtp.has_extn("pipelining")
        return smtp

    def ready(self) -> _TimedSMTP:
        """The session, connected (or checked, after a long idle) before a message is
        noted as on the wire. Raises ConnectFailure."""
        if self._smtp is not None and time.monotonic() - self._last_used > self.IDLE_CHECK_SECONDS:
            try:
                self._smtp.start_exchange(self.settings.smtp_transaction_seconds)
                self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                self.close()
        if self._smtp is None:
            self._smtp = self._connect()
        self._last_used = time.monotonic()
        return self._smtp

    def send(
        self,
        recipient: str,
        data: bytes,
        *,
        sender: str | None = None,
        before_body: Callable[[], None] | None = None,
    ) -> None:
        """Sends one message to one recipient. `data` is ready for DATA: CRLF line ends,
        dot-stuffed, ending in CRLF (PreparedMessage.render(for_smtp=True) makes it so).

        With PIPELINING (RFC 2920: most relays, Postfix, smtp-sink), MAIL, RCPT and DATA
        go in one write and cost one round trip; without it, one command at a time.
        `before_body` is called once the first command is written and before the body
        is: a relay cannot accept a message before its body ends, so what must be
        recorded before a send (the delivery journal) is recorded while the relay
        answers, and its own round trip costs no time of its own.
        Raises PermanentFailure (5xx), TemporaryFailure (4xx, a lost connection) or
        ConnectFailure (no session at all).
        """
        smtp = self.ready()
        smtp.start_exchange(self.settings.smtp_transaction_seconds)
        try:
            self._transaction(smtp, sender or self.sender, recipient, data, before_body)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            raise TemporaryFailure(f"connection lost: {exc}") from exc
        except OSError as exc:
            self.close()
            raise TemporaryFailure(f"connection lost: {exc}") from exc
        except BaseException:
            self.close()  # mid-transaction, replies unread: the session cannot be reused
            raise
        finally:
            self._last_used = time.monotonic()

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        sender: str,
        recipient: str,
        data: bytes,
        before_body: Callable[[], None] | None,
    ) -> None:
        mail, rcpt = f"MAIL FROM:<{sender}>\r\n", f"RCPT TO:<{recipient}>\r\n"
        if self.pipelining:
            smtp.send((mail + rcpt + "DATA\r\n").encode("ascii"))
            if before_body is not None:
                before_body()
            replies = [smtp.getreply(), smtp.getreply(), smtp.getreply()]
        else:
            replies = []
            for command, wanted in ((mail, 250), (rcpt, 250), ("DATA\r\n", 354)):
                smtp.send(command.encode("ascii"))
                if before_body is not None and command is mail:
                    before_body()
                replies.append(smtp.getreply())
                if replies[-1][0] != wanted and replies[-1][0] not in (251, 252):
                    break
        failed = next(
            (reply for reply, ok in zip(replies, (250, 250, 354), strict=False)
             if reply[0] != ok and reply[0] not in (251, 252)),
            None,
        )  # fmt: skip
        if failed is None:
            smtp.send(data + b".\r\n")
            code, text = smtp.getreply()
            if code == 250:
                return
            failed = (code, text)
        elif len(replies) == 3 and replies[2][0] == 354:
            smtp.send(b".\r\n")  # DATA was taken though a command before failed: end it empty
            smtp.getreply()
        self._reset(smtp, failed[0])
        raise _failure(*failed)

    def _reset(self, smtp: smtplib.SMTP, code: int) -> None:
        """After a refusal: RSET for the next message, or a new session if the server closes."""
        if code == 421:  # the server is closing the session
            self.close()
            return
        try:
            smtp.send(b"RSET\r\n")
            if smtp.getreply()[0] != 250:
                self.close()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None


def _failure(code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    # Kept in SQL as the row's reply: no NUL (PostgreSQL refuses it) or other control bytes.
    text = "".join(c if c.isprintable() else " " for c in text)[:1000]
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
