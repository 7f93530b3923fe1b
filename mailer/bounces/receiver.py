"""The inbound SMTP server for bounces (`mailer receive-bounces`, the Procfile's `bounces`).

It takes mail only for the bounce addresses (`bounces+<token>@<bounce domain>`, and
the bare `bounces@` that feedback loops report to) and hands each message to
bounces.process(). A database it cannot reach makes it answer 451, so the sending
MTA keeps the bounce and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from mailer.bounces import processing as bounces

log = logging.getLogger(__name__)

MAX_BOUNCE_BYTES = 10 * 1024 * 1024


def is_bounce_address(address: str, localpart: str, domain: str) -> bool:
    local, _, host = address.strip("<>").rpartition("@")
    name, _plus, _token = local.partition("+")
    return name.lower() == localpart.lower() and host.lower() == domain.lower()


class BounceHandler:
    def __init__(self, app: Flask) -> None:
        self.app = app
        settings = app.config["MAILER"]
        self.localpart, self.domain = settings.bounce_localpart, settings.bounce_mail_domain

    async def handle_RCPT(
        self, server: SMTP, session: object, envelope: Envelope, address: str, options: list
    ) -> str:
        if not is_bounce_address(address, self.localpart, self.domain):
            return "550 5.1.1 This server takes bounces for mailer only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: object, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            # The database is blocking work: off the event loop, so other sessions go on.
            await loop.run_in_executor(None, self._process, raw, list(envelope.rcpt_tos))
        except SQLAlchemyError as exc:
            log.warning("bounce not recorded, the sender will retry: %s", exc)
            return "451 4.3.0 Cannot record this bounce now; please try again later"
        return "250 OK"

    def _process(self, raw: bytes, recipients: list[str]) -> None:
        with self.app.app_context():
            for recipient in recipients:
                bounces.process(raw, recipient)


def run_receiver(app: Flask, host: str, port: int) -> None:
    controller = Controller(
        BounceHandler(app), hostname=host, port=port, data_size_limit=MAX_BOUNCE_BYTES
    )
    controller.start()
    print(f"Receiving bounces on smtp://{host}:{port}", flush=True)
    try:
        threading.Event().wait()  # serve until interrupted
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
