"""Bounces and complaints: what came back, for whom, and what it does to the reader.

Every way in (the SMTP receiver, `mailer process-bounce`, a 5xx during the send)
ends in `record()`. The VERP address the bounce came back to names the mail,
and so the reader: the addresses a bounce message quotes are never trusted, so
no bounce can change any reader but the one its token names.

- A hard bounce (5.x.x, a permanent failure) makes the reader `bounced`: never
  mailed again, until an editor re-activates them.
- A soft bounce (4.x.x) is counted: MAILER_SOFT_BOUNCE_LIMIT digests in a row with
  a soft bounce make the reader `bounced`; a later digest without one breaks the row.
- A complaint (an ARF report: the reader pressed "spam") unsubscribes the reader
  at once and suppresses the address, so no import brings them back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from flask import current_app
from flufl.bounce import all_failures
from sqlalchemy import func, select, update

from mailer.mail import verp
from mailer.mail.tokens import ReaderLink, TokenError, read_unsubscribe_token
from mailer.models import (
    Bounce,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
    utcnow,
)
from mailer.platform.db import db
from mailer.subscribers import records as readers

log = logging.getLogger(__name__)

ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
BASIC_REPLY = re.compile(r"\b([45])\d\d\b[ :-]")
TEXT_LIMIT = 1000


@dataclass(frozen=True)
class Report:
    """What a bounce message says happened."""

    kind: BounceKind
    status: str | None  # the enhanced status code, e.g. "5.1.1"
    text: str  # the receiving server's words


@dataclass(frozen=True)
class Target:
    """The one reader a bounce may change, and the mail it answers."""

    subscriber_id: int
    delivery_id: int | None = None
    digest_id: int | None = None


# --- reading a bounce message -------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessages
    return message


def classify(raw: bytes, message: Message) -> Report | None:
    """Hard, soft or a complaint; None for what is not a bounce (an out-of-office reply)."""
    if _report_type(message) == "feedback-report":
        return _complaint(message)
    if _report_type(message) == "delivery-status":
        return _dsn(message)
    # flufl.bounce's detectors know the formats of the wild; they read compat32 messages.
    temporary, permanent = all_failures(message_from_bytes(raw, policy=policy.compat32))
    if not (temporary or permanent):
        return None
    kind = BounceKind.HARD if permanent else BounceKind.SOFT
    text = _words(message)
    return Report(kind, _status(text, kind), _first_error_line(text))


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "")).lower()


def _dsn(message: Message) -> Report | None:
    """RFC 3464: the per-recipient fields of the message/delivery-status part."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diagnostic = diagnostic.split(";", 1)[-1].strip()
            if action == "failed" or status.startswith("5"):
                kind = BounceKind.HARD if not status.startswith("4") else BounceKind.SOFT
            elif action == "delayed" or status.startswith("4"):
                kind = BounceKind.SOFT
            else:
                continue  # delivered, relayed, expanded: not a failure
            found = ENHANCED_STATUS.search(status)
            code = found.group(0) if found else _status(diagnostic, kind)
            return Report(kind, code, diagnostic[:TEXT_LIMIT] or status)
    return None


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part (per-message first, then per recipient)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [
        message_from_bytes(chunk.encode("utf-8", "replace"), policy=policy.default)
        for chunk in re.split(r"\r?\n\r?\n", text)
        if chunk.strip()
    ]


def _complaint(message: Message) -> Report:
    feedback_type = "abuse"
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            for block in _status_blocks(part):
                feedback_type = str(block.get("Feedback-Type", feedback_type)).strip()
    return Report(BounceKind.COMPLAINT, None, f"complaint ({feedback_type})")


def _words(message: Message) -> str:
    """The human-readable text of a bounce: its text/plain parts, not the returned mail."""
    texts = []
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            break
        if part.get_content_type() == "text/plain":
            content = part.get_payload(decode=True)
            if isinstance(content, bytes):
                texts.append(content.decode("utf-8", "replace"))
    return "\n".join(texts)


def _status(text: str, kind: BounceKind) -> str | None:
    found = ENHANCED_STATUS.search(text)
    if found:
        return found.group(0)
    basic = BASIC_REPLY.search(text)
    if basic:
        return f"{basic.group(1)}.0.0"
    return "5.0.0" if kind == BounceKind.HARD else "4.0.0"


def _first_error_line(text: str) -> str:
    for line in text.splitlines():
        if ENHANCED_STATUS.search(line) or BASIC_REPLY.search(line):
            return " ".join(line.split())[:TEXT_LIMIT]
    return " ".join(text.split())[:TEXT_LIMIT]


# --- whom a bounce names ------------------------------------------------------


def target_of(message: Message, recipient: str | None) -> Target | None:
    """The reader a bounce is about: from the VERP address it was sent to; for a complaint
    also from the returned mail's Return-Path or its List-Unsubscribe link."""
    addresses = [recipient] if recipient else []
    addresses += [
        str(value)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for value in message.get_all(name, [])
    ]
    for address in addresses:
        ref = verp.ref_of_address(address)
        if ref is not None:
            return _resolve(ref)
    if _report_type(message) == "feedback-report":
        return _target_in_returned_mail(message)
    return None


def _resolve(ref: verp.MailRef) -> Target | None:
    if ref.kind == verp.MailKind.CONFIRMATION:
        found = db.session.get(Subscriber, ref.id)
        return Target(ref.id) if found is not None else None
    row = db.session.execute(
        select(Delivery.subscriber_id, Delivery.digest_id).where(Delivery.id == ref.id)
    ).first()
    return Target(row.subscriber_id, ref.id, row.digest_id) if row else None


def _target_in_returned_mail(report: Message) -> Target | None:
    for part in report.walk():
        if part.get_content_type() not in {"message/rfc822", "text/rfc822-headers"}:
            continue
        original = _as_message(part)
        if original is None:
            continue
        for address in original.get_all("Return-Path", []):
            ref = verp.ref_of_address(str(address))
            if ref is not None:
                return _resolve(ref)
        link = _unsubscribe_link(str(original.get("List-Unsubscribe", "")))
        if link is not None:
            subscriber = db.session.get(Subscriber, link.subscriber_id)
            if subscriber is not None and subscriber.link_key == link.key:
                return Target(subscriber.id)
    return None


def _as_message(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return message_from_bytes(payload.encode("utf-8", "replace"), policy=policy.default)
    return None


def _unsubscribe_link(header: str) -> ReaderLink | None:
    found = re.search(r"/unsubscribe/([A-Za-z0-9._-]+)>", header)
    if found is None:
        return None
    try:
        return read_unsubscribe_token(found.group(1))
    except TokenError:
        return None


# --- what a bounce does -------------------------------------------------------


def process(raw: bytes, recipient: str | None = None) -> str:
    """One bounce message, however it came in. Returns what it did:
    "hard", "soft", "complaint", "not-a-bounce" or "unknown" (no valid token: dropped)."""
    message = parse(raw)
    target = target_of(message, recipient)
    if target is None:
        log.warning("bounce for %r with no valid token: dropped", recipient)
        return "unknown"
    report = classify(raw, message)
    if report is None:
        return "not-a-bounce"
    record(target, report)
    return report.kind.value


def record(target: Target, report: Report) -> None:
    """Keeps the bounce and applies the policy to its one reader, in one transaction."""
    with db.transaction():
        db.session.add(
            Bounce(
                subscriber_id=target.subscriber_id,
                delivery_id=target.delivery_id,
                digest_id=target.digest_id,
                kind=report.kind,
                status=report.status,
                text=_printable(report.text),
            )
        )
        db.session.flush()
        if report.kind == BounceKind.HARD:
            _mark_bounced(target.subscriber_id)
        elif report.kind == BounceKind.COMPLAINT:
            _unsubscribe_complainer(target.subscriber_id)
        elif target.delivery_id is not None and _soft_bounced_in_a_row(target.subscriber_id):
            _mark_bounced(target.subscriber_id)
    log.info("%s bounce for subscriber %s: %s", report.kind, target.subscriber_id, report.status)


def record_refusal(
    subscriber_id: int, delivery_id: int | None, digest_id: int | None, reply: str
) -> None:
    """A 5xx in the SMTP transaction itself: a hard bounce, inside the caller's transaction."""
    found = ENHANCED_STATUS.search(reply)
    db.session.add(
        Bounce(
            subscriber_id=subscriber_id,
            delivery_id=delivery_id,
            digest_id=digest_id,
            kind=BounceKind.HARD,
            status=found.group(0) if found else "5.0.0",
            text=_printable(reply)[:TEXT_LIMIT],
        )
    )
    _mark_bounced(subscriber_id)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:TEXT_LIMIT]


def _mark_bounced(subscriber_id: int) -> None:
    db.change(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.status.in_((SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)),
        )
        .values(status=SubscriberStatus.BOUNCED, bounced_at=utcnow())
    )


def _unsubscribe_complainer(subscriber_id: int) -> None:
    now = utcnow()
    subscriber = db.session.get_one(Subscriber, subscriber_id)
    db.change(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(
            status=SubscriberStatus.UNSUBSCRIBED,
            unsubscribed_at=subscriber.unsubscribed_at or now,
            complained_at=now,
        )
    )
    digest = readers.address_hash(subscriber.email_key)
    if db.session.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        db.session.add(Suppression(email_hash=digest, reason="complained (marked as spam)"))


def _soft_bounced_in_a_row(subscriber_id: int) -> bool:
    """The reader's last N digests sent all bounced: no later digest went through."""
    limit = current_app.config["MAILER"].soft_bounce_limit
    last_sent = list(
        db.session.scalars(
            select(Delivery.id)
            .where(Delivery.subscriber_id == subscriber_id, Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.digest_id.desc())
            .limit(limit)
        )
    )
    if len(last_sent) < limit:
        return False
    bounced = db.session.scalar(
        select(func.count(func.distinct(Bounce.delivery_id))).where(
            Bounce.delivery_id.in_(last_sent), Bounce.kind == BounceKind.SOFT
        )
    )
    return bounced == limit
