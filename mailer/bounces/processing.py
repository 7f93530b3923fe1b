"""Bounces and complaints: what came back, for whom, and what it does to the reader.

Every way in (the SMTP receiver, `mailer process-bounce`, a 5xx during the send)
ends in `record()`. The VERP address the bounce came back to names the mail,
and so the reader: the addresses a bounce message quotes are never trusted, so
no bounce can change any reader but the one its token names.

Each bounce gets a reason (bounces/reasons.py), and the reason decides what it does to
the reader (bounces/policy.py), kept on the row as its kind:
- hard: the address is dead (permanently): the reader is `bounced`, never mailed again
  until an editor re-activates them;
- soft: the mailbox is in trouble: MAILER_SOFT_BOUNCE_LIMIT digests in a row with one make
  the reader `bounced`; a later digest without one breaks the row;
- refused: the receiving side refused the sender (blocklist, spam verdict, SPF/DKIM/DMARC,
  policy): the reader is left as they are, and editors see the refusals per domain;
- complaint (an ARF report: the reader pressed "spam"): unsubscribed at once and
  suppressed, so no import brings them back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from flask import current_app
from flufl.bounce import all_failures
from sqlalchemy import func, select, update

from mailer.bounces import formats
from mailer.bounces.policy import NOT_FAILURES, Decision, decide
from mailer.bounces.reasons import Reason
from mailer.bounces.reasons import classify as classify_reason
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
REPLY_CODE = re.compile(r"([245]\d\d)\b")
TEXT_LIMIT = 1000
# flufl.bounce's detectors read every line with several patterns (a megabyte of short lines
# took it 4 s); every format puts its diagnostic at the top, and Postfix returns only the
# first 50 KB of the original anyway.
DETECTOR_BYTES = 64 * 1024
# A delivery-status part has one block per recipient: a bounce of one mail has a few.
MAX_STATUS_BLOCKS = 100
# What can open a nested level: a multipart or message/* type, wherever it is declared.
CONTAINER = re.compile(rb"(?:multipart|message)\s*/", re.IGNORECASE)
# Every MIME part starts after a line like this: a cheap upper bound on their number.
DELIMITER_LINE = re.compile(rb"^--", re.MULTILINE)


class Unreadable(Exception):
    """A message too large or too complex to read: dropped, and not worth a retry."""


@dataclass(frozen=True)
class Report:
    """What a bounce message says happened."""

    kind: BounceKind
    status: str | None  # the enhanced status code, e.g. "5.1.1"
    text: str  # the receiving server's words
    reason: Reason | None = None  # where the format itself says why (a complaint, ...)


@dataclass(frozen=True)
class Target:
    """The one reader a bounce may change, and the mail it answers."""

    subscriber_id: int
    delivery_id: int | None = None
    digest_id: int | None = None


# --- reading a bounce message -------------------------------------------------


def check_shape(raw: bytes) -> None:
    """Refuses, before the parser sees it, a message whose parse would cost minutes or
    overflow the parser's recursion: the counts are upper bounds read from the raw bytes."""
    settings = current_app.config["MAILER"]
    if len(raw) > settings.bounce_max_bytes:
        raise Unreadable(f"{len(raw)} bytes, over MAILER_BOUNCE_MAX_BYTES")
    containers = len(CONTAINER.findall(raw))
    if containers > settings.bounce_max_depth:
        raise Unreadable(f"{containers} nested types, over MAILER_BOUNCE_MAX_DEPTH")
    parts = len(DELIMITER_LINE.findall(raw))
    if parts > settings.bounce_max_parts:
        raise Unreadable(f"{parts} MIME parts, over MAILER_BOUNCE_MAX_PARTS")


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessages
    return message


def classify(raw: bytes, message: Message) -> Report | None:
    """What a message says happened, in the first format that reads it; None for what is
    not a bounce, a complaint, an auto-reply or a delivery notice."""
    for recognise in (formats.feedback_report, formats.microsoft_jmrp, formats.apple_unsubscribe):
        found = recognise(message)
        if found is not None:
            return _report(found)
    if _report_type(message) == "delivery-status" or _has_part(message, "message/delivery-status"):
        report = _dsn(message)
        if report is not None:
            return report
        # A status part that reads as nothing: its text parts, and the detectors, may.
    text = formats.text_parts(message)
    found = formats.amazon_ses(message, text) or formats.auto_reply(message)
    if found is not None:
        return _report(found)
    # flufl.bounce's detectors know the formats of the wild; they read compat32 messages.
    top = message_from_bytes(raw[:DETECTOR_BYTES], policy=policy.compat32)
    temporary, permanent = all_failures(top)
    if temporary or permanent:
        kind = BounceKind.HARD if permanent else BounceKind.SOFT
        line = formats.diagnostic_line(text)
        status = ENHANCED_STATUS.search(line) or ENHANCED_STATUS.search(text)
        if status is not None and status.group(1) == "4":
            kind = BounceKind.SOFT  # flufl.bounce calls some 4.x.x failures permanent
        return Report(kind, status.group(0) if status else None, line)
    found = formats.plain_words(message, text)
    return _report(found) if found is not None else None


def _report(found: formats.Found) -> Report:
    if found.reason is Reason.COMPLAINT:
        kind = BounceKind.COMPLAINT
    else:
        kind = BounceKind.HARD if found.permanent else BounceKind.SOFT
    return Report(kind, found.status, found.words, found.reason)


def _has_part(message: Message, content_type: str) -> bool:
    return any(part.get_content_type() == content_type for part in message.walk())


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "")).lower()


def _dsn(message: Message) -> Report | None:
    """RFC 3464: the per-recipient fields of the message/delivery-status part."""
    delivered: Report | None = None
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
            elif action in ("delivered", "relayed", "expanded"):
                delivered = Report(BounceKind.SOFT, status or None, action, Reason.DELIVERED)
                continue  # a failure for another recipient may follow
            else:
                continue
            found = ENHANCED_STATUS.search(status)
            code = found.group(0) if found else _status(diagnostic, kind)
            return Report(kind, code, diagnostic[:TEXT_LIMIT] or status)
    return delivered


def _status_blocks(part: Message) -> Iterator[Message]:
    """The header blocks of a delivery-status part (per-message first, then per recipient),
    the first MAX_STATUS_BLOCKS only, each parsed when it is reached."""
    payload = part.get_payload()
    if isinstance(payload, list):
        yield from (block for block in payload[:MAX_STATUS_BLOCKS] if isinstance(block, Message))
        return
    text = payload if isinstance(payload, str) else ""
    chunks = re.split(r"\r?\n\r?\n", text, maxsplit=MAX_STATUS_BLOCKS)[:MAX_STATUS_BLOCKS]
    for chunk in chunks:
        if chunk.strip():
            yield message_from_bytes(chunk.encode("utf-8", "replace"), policy=policy.default)


def _status(text: str, kind: BounceKind) -> str | None:
    found = ENHANCED_STATUS.search(text)
    if found:
        return found.group(0)
    basic = BASIC_REPLY.search(text)
    if basic:
        return f"{basic.group(1)}.0.0"
    return "5.0.0" if kind == BounceKind.HARD else "4.0.0"


# --- whom a bounce names ------------------------------------------------------


def header_addresses(message: Message) -> list[str]:
    """The addresses the bounce's own headers say it was delivered to."""
    return [
        str(value)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for value in message.get_all(name, [])
    ]


def target_of(
    message: Message, recipient: str | None, headers: list[str] | None = None
) -> Target | None:
    """The reader a bounce is about: from the VERP address it was sent to; for a complaint
    also from the returned mail's Return-Path or its List-Unsubscribe link."""
    addresses = [recipient] if recipient else []
    addresses += header_addresses(message) if headers is None else headers
    for address in addresses:
        ref = verp.ref_of_address(address)
        if ref is not None:
            return _resolve(ref)
    # The returned mail's own signed parts (its VERP Return-Path, its List-Unsubscribe
    # link): what feedback loops that mail the bare address still carry. Never an address.
    return _target_in_returned_mail(message)


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


# --- what a bounce would do: `mailer bounces explain` ----------------------------


@dataclass(frozen=True)
class Explanation:
    reason: str
    status: str | None
    reply: str
    domain: str | None
    decision: str  # bounced, soft, unsubscribed or none
    reader: str  # the address it would change, or why there is none


DECISION_OF = {
    BounceKind.HARD: "bounced",
    BounceKind.SOFT: "soft",
    BounceKind.COMPLAINT: "unsubscribed",
    BounceKind.REFUSED: "none",
}


def explain(raw: bytes, recipient: str | None = None) -> Explanation:
    """What `process` would decide for one message, changing nothing."""
    try:
        check_shape(raw)
    except Unreadable as refused:
        return Explanation("unknown", None, f"unreadable: {refused}", None, "none", "none")
    message = parse(raw)
    report = classify(raw, message)
    if report is None:
        return Explanation("unknown", None, "not a bounce", None, "none", "none")
    reason, kind = judge(report)
    decision = "none" if reason in NOT_FAILURES else DECISION_OF[kind]
    target = target_of(message, recipient)
    if target is None:
        reader, domain = "none: no token of ours in the message", None
    else:
        email = db.session.scalar(
            select(Subscriber.email).where(Subscriber.id == target.subscriber_id)
        )
        reader = email or "none: the reader was erased"
        domain = email.rpartition("@")[2].lower() if email else None
    return Explanation(reason.value, report.status, report.text, domain, decision, reader)


# --- what a bounce does -------------------------------------------------------


def process(raw: bytes, recipients: Sequence[str | None] = (None,)) -> list[str]:
    """One bounce message, however it came in, for each address it came back to (None: the
    one its headers name). Returns what it did for each: "hard", "soft", "complaint",
    "not-a-bounce", "unknown" (no valid token: dropped) or "duplicate" (already recorded).

    Raises Unreadable, before parsing, for a message too large or too complex to read.
    The message is parsed and classified once, however many recipients it has."""
    check_shape(raw)
    message = parse(raw)
    headers = header_addresses(message)
    report: Report | None = None
    classified = False
    outcomes = []
    for recipient in recipients:
        target = target_of(message, recipient, headers)
        if target is None:
            log.warning("bounce for %r with no valid token: dropped", recipient)
            outcomes.append("unknown")
            continue
        if not classified:
            report, classified = classify(raw, message), True
        if report is None or report.reason in NOT_FAILURES:
            outcomes.append("not-a-bounce")  # an auto-reply, a delivery notice
        else:
            kind = record(target, report)
            outcomes.append(kind.value if kind is not None else "duplicate")
    return outcomes


def judge(report: Report) -> tuple[Reason, BounceKind]:
    """The bounce's reason, and what the policy makes of it for the reader."""
    if report.kind == BounceKind.COMPLAINT:
        return Reason.COMPLAINT, BounceKind.COMPLAINT
    reason = report.reason or classify_reason(
        report.status, report.text, code=_reply_code(report.text)
    )
    permanent = report.kind == BounceKind.HARD
    return reason, KIND_OF[decide(reason, permanent=permanent)]


KIND_OF = {
    Decision.BOUNCED: BounceKind.HARD,
    Decision.SOFT: BounceKind.SOFT,
    Decision.UNSUBSCRIBED: BounceKind.COMPLAINT,
    Decision.NONE: BounceKind.REFUSED,
}


def record(target: Target, report: Report) -> BounceKind | None:
    """Keeps the bounce and applies the policy to its one reader, in one transaction.

    One mail's token names one reader and can be replayed at will: a mail keeps at most
    one bounce of each kind, so a repeat adds no row and changes nothing (None)."""
    reason, kind = judge(report)
    with db.transaction():
        _lock_reader(target.subscriber_id)
        if _already_recorded(target, kind):
            log.info("%s bounce for subscriber %s: a repeat", kind, target.subscriber_id)
            return None
        _keep(target, kind, reason, report.status, report.text)
    log.info(
        "%s bounce (%s) for subscriber %s: %s", kind, reason, target.subscriber_id, report.status
    )
    return kind


def _keep(target: Target, kind: BounceKind, reason: Reason, status: str | None, text: str) -> None:
    """The row, and what its kind does to the reader (inside the caller's transaction)."""
    db.session.add(
        Bounce(
            subscriber_id=target.subscriber_id,
            delivery_id=target.delivery_id,
            digest_id=target.digest_id,
            kind=kind,
            status=status,
            text=_printable(text)[:TEXT_LIMIT],
            reason=reason.value,
            domain=_domain_of(target.subscriber_id),
        )
    )
    db.session.flush()
    if kind == BounceKind.HARD:
        _mark_bounced(target.subscriber_id)
    elif kind == BounceKind.COMPLAINT:
        _unsubscribe_complainer(target.subscriber_id)
    elif (
        kind == BounceKind.SOFT
        and target.delivery_id is not None
        and _soft_bounced_in_a_row(target.subscriber_id)
    ):
        _mark_bounced(target.subscriber_id)


def _domain_of(subscriber_id: int) -> str | None:
    email = db.session.scalar(select(Subscriber.email).where(Subscriber.id == subscriber_id))
    return email.rpartition("@")[2].lower() if email else None


def _reply_code(text: str) -> int | None:
    found = REPLY_CODE.match(text.strip())
    return int(found.group(1)) if found else None


def _lock_reader(subscriber_id: int) -> None:
    """Makes concurrent bounces for one reader take turns, so the check for a repeat below
    sees the other's row: a write takes the row lock on PostgreSQL and the one write lock on
    SQLite (a SELECT ... FOR UPDATE would be no lock at all there)."""
    db.change(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(status=Subscriber.status)
    )


def _already_recorded(target: Target, kind: BounceKind) -> bool:
    # A confirmation's token (and a complaint found by its link) names the reader alone.
    same_mail = (
        Bounce.delivery_id == target.delivery_id
        if target.delivery_id is not None
        else Bounce.delivery_id.is_(None)
    )
    found = db.session.scalar(
        select(Bounce.id)
        .where(Bounce.subscriber_id == target.subscriber_id, same_mail, Bounce.kind == kind)
        .limit(1)
    )
    return found is not None


def record_refusal(
    subscriber_id: int, delivery_id: int | None, digest_id: int | None, reply: str
) -> BounceKind:
    """A 5xx in the SMTP transaction itself, judged by the same policy as a bounce that
    comes back later (a 550 5.7.1 blocklisting leaves the reader as they are), inside the
    caller's transaction."""
    found = ENHANCED_STATUS.search(reply)
    report = Report(BounceKind.HARD, found.group(0) if found else None, reply)
    reason, kind = judge(report)
    _keep(Target(subscriber_id, delivery_id, digest_id), kind, reason, report.status, reply)
    return kind


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
