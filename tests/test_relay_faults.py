"""A relay that misbehaves the way real ones do: every reader still gets exactly one digest,
or a recorded permanent failure."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailer.models import Delivery, DeliveryStatus, Subscriber
from mailer.platform.db import db
from tests.conftest import Worker, free_port
from tests.helpers import add_article, add_readers
from tests.test_send_resilience import finish_with_reconciler

pytestmark = pytest.mark.slow

READERS = 300


def fault_for(address: str) -> str | None:
    """Which fault a reader meets, by the number in their address: a fixed share of each."""
    n = int(address.split("@")[0].removeprefix("relay"))
    if n % 100 == 7:
        return "550"  # 1 %: the mailbox does not exist, every time
    if n % 100 == 11:
        return "drop"  # 1 %: the connection is cut in the middle of DATA, once
    if n % 100 == 13:
        return "stall"  # 1 %: the relay stops answering, once
    if n % 10 == 3:
        return "451"  # 10 %: greylisting, once
    if n % 50 == 21:
        return "421"  # 2 %: "try later", once
    return None


class FaultyRelay:
    def __init__(self, stall_seconds: float, pipelining: bool) -> None:
        self.stall_seconds = stall_seconds
        self.pipelining = pipelining
        self.tries: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.delivered: list[str] = []
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.tries[address] += 1
            first = self.tries[address] == 1
            fault = fault_for(address)
        if fault == "550":
            self.faults[fault] += first
            return "550 5.1.1 No such mailbox here"
        if first and fault in {"451", "421"}:
            self.faults[fault] += 1
            return f"{fault} 4.7.1 Try again later"
        if first and fault == "stall":
            self.faults[fault] += 1
            await asyncio.sleep(self.stall_seconds)  # past the sender's timeout
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        address = envelope.rcpt_tos[0]
        if fault_for(address) == "drop" and self.tries[address] == 1:
            self.faults["drop"] += 1
            server.transport.close()  # no reply: the sender cannot know
            return "421 gone"
        with self.lock:
            self.delivered.append(address)
        return "250 OK"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_greylisting_refusals_drops_and_stalls_end_in_exactly_one_mail_each(
    app, isolated, tmp_path, pipelining
):
    relay = FaultyRelay(stall_seconds=4, pipelining=pipelining)
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        app, env = isolated(
            extra={
                "MAILER_SMTP_PORT": str(controller.port),
                "MAILER_SMTP_TIMEOUT": "2",
                "MAILER_CLAIM_STALE_SECONDS": "12",
                "MAILER_SEND_MAX_ATTEMPTS": "4",
            }
        )
        emails = add_readers(app, "relay", READERS)
        add_article(app, "Faults", "https://news.example.org/faults")
        worker = Worker(env, tmp_path / "worker.log", concurrency=2)
        worker.start(app)
        try:
            with app.app_context():
                from mailer.digests.runs import create_digest

                digest_id = create_digest(trigger="test")
            statuses = finish_with_reconciler(app, digest_id, timeout=120)
        finally:
            worker.stop()
    finally:
        controller.stop()

    received = Counter(relay.delivered)
    permanent = {e for e in emails if fault_for(e) == "550"}
    assert max(received.values()) == 1, "somebody got the digest twice"
    assert set(received) == set(emails) - permanent
    assert statuses[DeliveryStatus.SENT] == READERS - len(permanent)
    assert statuses[DeliveryStatus.FAILED] == len(permanent)
    # Every kind of fault really happened.
    assert relay.faults["451"] >= 25 and relay.faults["421"] >= 4
    assert relay.faults["drop"] == relay.faults["stall"] == 3
    with app.app_context():
        replies = dict(
            db.session.execute(
                select(Subscriber.email, Delivery.smtp_reply)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.status == DeliveryStatus.FAILED)
            ).all()
        )
        retried = db.session.scalar(
            select(Delivery.attempts)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "relay11@example.org")
        )
    assert set(replies) == permanent
    assert all(reply.startswith("550 5.1.1") for reply in replies.values())
    assert retried == 2  # the dropped one: counted as an attempt, then sent
