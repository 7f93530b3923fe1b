"""The inbound SMTP server for bounces (`mailer receive-bounces`, the Procfile's `bounces`).

It takes mail only for the bounce addresses (`bounces+<token>@<bounce domain>`, and
the bare `bounces@` that feedback loops report to) and hands each message to
bounces.process(). A database it cannot reach makes it answer 451, so the sending
MTA keeps the bounce and tries again.

Anyone can connect, so each step costs the client more than it costs the server: a
token is checked at RCPT (a block of AES, no database), before any body is read;
recipients, size, MIME parts and nesting are capped; a client address holds a few
sessions at most, each with a budget of commands and an idle timeout; and a message is
parsed once, however many recipients it names.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from mailer.bounces import processing as bounces
from mailer.mail import verp

log = logging.getLogger(__name__)

# Per session and per command. A message is MAIL, RCPT..., DATA (and RSET): Postfix sends
# many over one cached connection, and reconnects after a 421; a client that only talks
# (NOOP, HELP, VRFY, EHLO again) is cut off after ten of each.
COMMAND_LIMITS = {"MAIL": 100, "RCPT": 1000, "DATA": 100, "RSET": 100, "*": 10}

TRY_AGAIN = "451 4.3.0 Cannot take this bounce now; please try again later"


def is_bounce_address(address: str, localpart: str, domain: str) -> bool:
    local, _, host = address.strip("<>").rpartition("@")
    name, _plus, _token = local.partition("+")
    return name.lower() == localpart.lower() and host.lower() == domain.lower()


class BounceHandler:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = app.config["MAILER"]
        self.localpart = self.settings.bounce_localpart
        self.domain = self.settings.bounce_mail_domain

    async def handle_RCPT(
        self, server: SMTP, session: object, envelope: Envelope, address: str, options: list
    ) -> str:
        if not is_bounce_address(address, self.localpart, self.domain):
            return "550 5.1.1 This server takes bounces for mailer only"
        _name, plus, _token = address.rpartition("@")[0].partition("+")
        if plus and verp.ref_of_address(address, self.settings) is None:
            return "550 5.1.1 No mail of ours was sent from this address"
        # Tokens, the local part and the domain are all case-insensitive.
        if address.lower() in (taken.lower() for taken in envelope.rcpt_tos):
            return "250 OK"  # a duplicate: the message is read for it once
        if len(envelope.rcpt_tos) >= self.settings.bounce_max_recipients:
            # RFC 5321 4.5.3.1.10: the client sends the rest in another transaction.
            return "452 4.5.3 Too many recipients; send the rest in another message"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: object, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            # Parsing and the database are blocking work: off the event loop, so other
            # sessions go on.
            return await loop.run_in_executor(None, self._process, raw, list(envelope.rcpt_tos))
        except SQLAlchemyError:
            log.warning("bounce not recorded, the sender will retry", exc_info=True)
            return TRY_AGAIN

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's own answer would hand the exception's text to whoever connected. A
        # failure of ours is worth a retry: the sender keeps the bounce until it is fixed.
        log.error("bounce handling failed", exc_info=error)
        return TRY_AGAIN

    def _process(self, raw: bytes, recipients: list[str]) -> str:
        with self.app.app_context():
            try:
                bounces.process(raw, recipients)
            except bounces.Unreadable as refused:
                log.warning("bounce refused: %s", refused)
                return "554 5.6.0 This message is too large or too complex to read as a bounce"
        return "250 OK"


class BounceSMTP(SMTP):
    """aiosmtpd's session, refused at once (421) when its client address already holds
    its share of sessions: idle connections from one place cannot fill the server."""

    def __init__(self, handler: Any, sessions: Counter[str], limit: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions, self.limit = sessions, limit
        self.counted: str | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Runs on the server's one event loop thread, as connection_lost does: no lock.
        if self.counted is None:
            peer = transport.get_extra_info("peername")
            host = str(peer[0]) if peer else ""
            if self.sessions[host] >= self.limit:
                log.warning("bounce session from %s refused: %d open", host, self.limit)
                self.refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many sessions from your address; try later\r\n")
                transport.close()
                return
            self.sessions[host] += 1
            self.counted = host
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.refused:
            # SMTP's own teardown expects the session it never started.
            asyncio.StreamReaderProtocol.connection_lost(self, error)
            return
        if self.counted is not None:
            self.sessions[self.counted] -= 1
            if self.sessions[self.counted] <= 0:
                del self.sessions[self.counted]
            self.counted = None
        super().connection_lost(error)


class BounceController(Controller):
    """The receiver with its caps, in a thread of its own (the CLI's and the tests')."""

    def __init__(self, app: Flask, hostname: str, port: int) -> None:
        settings = app.config["MAILER"]
        self.sessions: Counter[str] = Counter()
        self.session_limit = settings.bounce_sessions_per_address
        super().__init__(
            BounceHandler(app),
            hostname=hostname,
            port=port,
            data_size_limit=settings.bounce_max_bytes,
            timeout=settings.bounce_session_timeout,
            command_call_limit=COMMAND_LIMITS,
        )

    def factory(self) -> SMTP:
        return BounceSMTP(self.handler, self.sessions, self.session_limit, **self.SMTP_kwargs)


def run_receiver(app: Flask, host: str, port: int) -> None:
    controller = BounceController(app, host, port)
    controller.start()
    print(f"Receiving bounces on smtp://{host}:{port}", flush=True)
    try:
        threading.Event().wait()  # serve until interrupted
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
