"""The formats bounces and complaints come in besides RFC 3464 and flufl.bounce's: ARF
reports wherever their part sits, Microsoft's JMRP, Apple's unsubscribe mail, Amazon SES
notifications by mail, auto-replies, and any other MTA's plain words (DragonFly, Amazon
WorkMail, ...), recognised by who sent them and read for their diagnostic line.

Each returns what the message says (a status, the server's words, whether permanent, and a
reason where the format itself says it), or None when it is not of that format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message

from mailer.bounces.reasons import STATUS, Reason

TEXT_LIMIT = 1000
REPLY = re.compile(r"(?<![\d.])([45])\d\d(?:[ :-]|$)")
# A message from a mail system about a mail, not from a person.
DAEMON = re.compile(
    r"mailer[-_]?daemon|postmaster|mail[-_ ]?delivery|mail[-_ ]?administrator|"
    r"mail[-_ ]?system|\bmdaemon\b|notification|postoffice|mailerdaemon",
    re.IGNORECASE,
)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|has failed)|"
    r"returned mail|mail delivery|failure notice|could not be delivered|non[- ]?delivery|"
    r"delivery problem|not delivered|rejected|returned to sender|mail system error|"
    r"warning: could not send|delayed mail|delivery delayed|error sending",
    re.IGNORECASE,
)
AUTO_REPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)|"
    r"^auto:|abwesen|absence|vacation|on leave|away from",
    re.IGNORECASE,
)
# Sentences every MTA puts around the diagnostic: never the reason.
BOILERPLATE = re.compile(
    r"this is the (?:mail system|\w+ program|mail delivery|dragonfly)|"
    r"i'm sorry to have to inform you|could not be delivered to one or more|"
    r"this message was created automatically|the following (?:address|message)|"
    r"permanent error|temporary error|delivery to the following recipient",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Found:
    permanent: bool
    status: str | None
    words: str
    reason: Reason | None = None  # where the format says it (a complaint, an auto-reply)


def text_parts(message: Message) -> str:
    """The human-readable text of a bounce: its text parts, not the returned mail."""
    texts = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            break
        if part.get_content_type() in ("text/plain", "message/delivery-status"):
            content = part.get_payload(decode=True)
            if isinstance(content, bytes):
                texts.append(content.decode("utf-8", "replace"))
    return "\n".join(texts)


def feedback_report(message: Message) -> Found | None:
    """An ARF report (RFC 5965), wherever its part is: `auth-failure` reports a DMARC, SPF
    or DKIM failure, not a reader pressing "spam"."""
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        first = payload[0] if isinstance(payload, list) and payload else payload
        text = first.as_string() if isinstance(first, Message) else str(first)
        kind = re.search(r"^Feedback-Type:\s*([\w-]+)", text, re.IGNORECASE | re.MULTILINE)
        feedback_type = kind.group(1).lower() if kind else "abuse"
        if feedback_type == "auth-failure":
            return Found(True, None, "ARF auth-failure report", Reason.AUTH)
        return Found(True, None, f"complaint ({feedback_type})", Reason.COMPLAINT)
    return None


def microsoft_jmrp(message: Message) -> Found | None:
    """Microsoft's Junk Mail Reporting Program: the returned mail, not ARF."""
    subject = str(message.get("Subject", ""))
    sender = str(message.get("From", "")).lower()
    if "complaint about message from" in subject.lower() or (
        sender.endswith(("@hotmail.com", "@outlook.com", "@live.com")) and "staff@" in sender
    ):
        return Found(True, None, "complaint (Microsoft JMRP)", Reason.COMPLAINT)
    for part in message.walk():
        if part.get("X-HmXmrOriginalRecipient"):
            return Found(True, None, "complaint (Microsoft JMRP)", Reason.COMPLAINT)
    return None


def apple_unsubscribe(message: Message) -> Found | None:
    """Apple Mail's "unsubscribe" button: a plain mail marked X-Apple-Unsubscribe."""
    if str(message.get("X-Apple-Unsubscribe", "")).strip().lower() == "true":
        return Found(True, None, "unsubscribe request (Apple Mail)", Reason.COMPLAINT)
    return None


SES_SUBTYPES = {
    "noemail": Reason.USER_UNKNOWN,
    "suppressed": Reason.USER_UNKNOWN,
    "onaccountsuppressionlist": Reason.USER_UNKNOWN,
    "mailboxfull": Reason.MAILBOX_FULL,
    "messagetoolarge": Reason.SYSTEM,
    "contentrejected": Reason.SPAM,
    "attachmentrejected": Reason.POLICY,
}


def amazon_ses(message: Message, text: str) -> Found | None:
    """An Amazon SES notification delivered by mail (SNS's JSON in the body; mail clients
    and relays wrap its lines, so the fields are also read one by one)."""
    start = text.find('{"notificationType"')
    if start < 0:
        return None
    try:
        notice, _end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        notice = _ses_fields(text[start:])
    if not isinstance(notice, dict):
        return None
    kind = str(notice.get("notificationType", ""))
    if kind == "Complaint":
        return Found(True, None, "complaint (Amazon SES)", Reason.COMPLAINT)
    if kind == "Delivery":
        return Found(False, None, "delivered (Amazon SES)", Reason.DELIVERED)
    if kind != "Bounce" or not isinstance(notice.get("bounce"), dict):
        return None
    bounce = notice["bounce"]
    recipients = bounce.get("bouncedRecipients") or [{}]
    first = recipients[0] if isinstance(recipients[0], dict) else {}
    diagnostic = str(first.get("diagnosticCode", "") or first.get("status", ""))
    status = str(first.get("status", "")) or None
    permanent = bounce.get("bounceType") == "Permanent"
    subtype = str(bounce.get("bounceSubType", "")).lower()
    reason = SES_SUBTYPES.get(subtype)
    words = diagnostic or f"{bounce.get('bounceType')} {bounce.get('bounceSubType')}"
    return Found(permanent, status, words[:TEXT_LIMIT], reason)


def _ses_fields(text: str) -> dict:
    flat = "".join(text.splitlines())

    def field(name: str) -> str:
        found = re.search(rf'"{name}"\s*:\s*"([^"]*)"', flat)
        return found.group(1) if found else ""

    bounce = {"bounceType": field("bounceType"), "bounceSubType": field("bounceSubType")}
    recipient = {"diagnosticCode": field("diagnosticCode"), "status": field("status")}
    return {
        "notificationType": field("notificationType"),
        "bounce": {**bounce, "bouncedRecipients": [recipient]},
    }


def auto_reply(message: Message) -> Found | None:
    """An out-of-office or other automatic answer from a person's mailbox."""
    submitted = str(message.get("Auto-Submitted", "")).lower()
    subject = str(message.get("Subject", ""))
    sender = str(message.get("From", ""))
    if DAEMON.search(sender) or BOUNCE_SUBJECT.search(subject):
        return None
    if (
        submitted.startswith("auto-replied")
        or message.get("X-Autoreply")
        or message.get("X-Autorespond")
        or AUTO_REPLY_SUBJECT.search(subject)
    ):
        return Found(
            False, None, f"auto-reply: {' '.join(subject.split())[:200]}", Reason.AUTO_REPLY
        )
    return None


def plain_words(message: Message, text: str) -> Found | None:
    """A bounce in any other MTA's words: from a mail system, about a delivery, with a
    diagnostic line (an SMTP reply, an enhanced status, or a sentence of the kind)."""
    sender = str(message.get("From", "")) + " " + str(message.get("Return-Path", ""))
    subject = str(message.get("Subject", ""))
    empty_sender = str(message.get("Return-Path", "")).strip() in ("<>", "")
    if not (DAEMON.search(sender) or (empty_sender and BOUNCE_SUBJECT.search(subject))):
        return None
    if not BOUNCE_SUBJECT.search(subject) and not STATUS.search(text):
        return None
    line = diagnostic_line(text)
    status_found = STATUS.search(line) or STATUS.search(text)
    status = status_found.group(0) if status_found else None
    reply = REPLY.search(line)
    first = (status or (reply.group(1) if reply else "5"))[0]
    delayed = re.search(r"delay|will (?:retry|try again)|still trying", subject + text[:600], re.I)
    permanent = first == "5" and not delayed
    return Found(permanent, status, line)


def diagnostic_line(text: str) -> str:
    """The line that says why: the first with an SMTP reply or a status code that is not a
    sentence every MTA writes, else the first after the boilerplate."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    for n, line in enumerate(lines):
        if (REPLY.search(line) or STATUS.search(line)) and not BOILERPLATE.search(line):
            # A reply wrapped over lines: its next line is often the words that matter.
            following = lines[n + 1] if n + 1 < len(lines) else ""
            return f"{line} {following}".strip()[:TEXT_LIMIT]
    # No reply code anywhere: the words are in the sentences, all of them read.
    return " ".join(line for line in lines if line and not BOILERPLATE.search(line))[:TEXT_LIMIT]
