"""Why a mail came back: one reason per bounce, from what the receiving server wrote.

The enhanced status code (RFC 3463, RFC 7372 and the IANA registry) decides first where
its detail is specific; the receiving server's words decide where the code is generic
(5.0.0, 5.7.1, 4.7.0 and the like are used by every provider for every refusal, so
"5.7.1 Service unavailable; client host blocked using Spamhaus" is a blocklisting, not a
dead address); the SMTP reply code comes last. The words are matched as the big providers
and MTAs phrase them; each pattern is kept by a test on real messages (tests/bounces/).
"""

from __future__ import annotations

import re
from enum import StrEnum


class Reason(StrEnum):
    # The address is dead.
    USER_UNKNOWN = "user_unknown"
    HOST_UNKNOWN = "host_unknown"
    MOVED = "moved"
    # The reader's mailbox or its server is in trouble, for now.
    MAILBOX_FULL = "mailbox_full"
    DISABLED = "disabled"  # suspended or inactive account
    EXPIRED = "expired"  # the relay gave up retrying
    NETWORK = "network"
    SYSTEM = "system"
    RATE_LIMITED = "rate_limited"
    # The receiving side refuses the sender, not the reader.
    BLOCKED = "blocked"  # the sending IP or domain is on a blocklist or blocked
    SPAM = "spam"  # the content was judged as spam
    AUTH = "auth"  # SPF, DKIM or DMARC failed
    POLICY = "policy"
    # Not failures.
    AUTO_REPLY = "auto_reply"
    DELIVERED = "delivered"
    COMPLAINT = "complaint"
    UNKNOWN = "unknown"


# Words first where the status code is too generic to say anything (x.0.0, x.7.1, ...).
# Order matters: the first match wins, the sender-side ones before the address-dead ones,
# because a refusal of the sender often also says "rejected" or "denied" of the recipient.
_WORDS: tuple[tuple[Reason, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            # The refusal is of our envelope sender (a VERP address the receiver dislikes).
            Reason.POLICY,
            r"sender (?:address |domain )?(?:rejected|refused|denied|unknown|invalid)|"
            r"(?:unroutable|invalid|unknown|bad) sender|domain of sender address|"
            r"sender verify failed|sender address does not",
        ),
        (
            Reason.AUTH,
            r"\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|not authenticated|"
            r"authentication (?:fail|required|results)|unauthenticated|reverse dns|"
            r"\bptr\b|rdns|reverse (?:lookup|mapping)",
        ),
        (
            Reason.BLOCKED,
            r"spamhaus|spamcop|barracuda|sorbs|\bsurbl\b|\buribl\b|\brbl\b|\bdnsbl\b|"
            r"block ?list|black ?list|blocked|\blisted\b|bad reputation|poor reputation|"
            r"reputation|banned|client host .* (?:rejected|refused)|ip .* (?:rejected|refused)|"
            r"access denied|not allowed to send|rejected due to|\bRP-00\d\b|\bS3\d{3}\b|"
            r"mail from .* (?:refused|rejected)|smtp server of your isp|dynamic ip|dial-?up|"
            r"residential|sending ips?\b|weren't sent|contact your internet service provider|"
            r"not allowed to relay from",
        ),
        (
            Reason.SPAM,
            r"\bspam\b|junk|unsolicited|bulk mail|content (?:rejected|filter)|"
            r"message (?:content )?(?:was )?(?:rejected|refused) (?:as|because|due)|"
            r"suspicious|phishing|virus|malware|looks like",
        ),
        (
            Reason.RATE_LIMITED,
            r"rate limit|rate-limit|too many (?:messages|connections|recipients|emails|mails)|"
            r"throttl|try again later|temporarily deferred|slow down|exceeded the rate|"
            r"receiving mail at a rate|\b421[ -]4\.7\.0\b|ratelimit",
        ),
        (
            Reason.MAILBOX_FULL,
            r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:storage|quota)|"
            r"insufficient (?:system )?storage|storage (?:space|limit)|mailbox size limit|"
            r"not enough (?:space|storage)|full mailbox|disk quota|mail ?box is full|"
            r"user's mailbox is over|exceeds (?:the )?(?:allowed )?size|mailbox exceeds|"
            r"size limit exceeded",
        ),
        (
            Reason.DISABLED,
            r"disabled|suspended|inactive|deactivated|not active|account (?:has been )?closed|"
            r"account (?:is )?locked|frozen|expired account|account expired|"
            r"temporarily unavailable|blocked by the user",
        ),
        (
            Reason.MOVED,
            r"\bmoved\b|no longer (?:valid|available|at)|has changed|forward(?:ed)? to",
        ),
        (
            Reason.HOST_UNKNOWN,
            r"host (?:or domain )?(?:name )?not found|unknown host|domain not found|"
            r"no such domain|nxdomain|host unknown|unrouteable|unroutable|no mx|"
            r"name service error|domain (?:does not|doesn't) exist|bad destination system|"
            r"mail for .* loops back|unrouteable address|null mx",
        ),
        (
            Reason.USER_UNKNOWN,
            r"user unknown|unknown user|no such user|no such (?:mailbox|recipient|account)|"
            r"user not found|recipient not found|mailbox not found|does not exist|"
            r"doesn't exist|invalid (?:mailbox|recipient|address|user)|unknown recipient|"
            r"recipient (?:address )?rejected|address rejected|mailbox unavailable|"
            r"not a valid mailbox|no mailbox|unknown (?:mailbox|address|local part)|"
            r"address does not|user doesn't have|"
            r"no account by that name|not our customer|no valid recipients|"
            r"bad destination mailbox|mailbox (?:is )?unavailable|user not exist|"
            r"invalid .{0,20}userid|no such person|unknown local",
        ),
        (
            Reason.EXPIRED,
            r"retry (?:time|timeout) (?:not reached|exceeded)|too long|gave up|giving up|"
            r"expired|delivery time|could not be delivered within|message timed out|"
            r"has been delayed|retry timeout|failed \d+ attempts|could not deliver for \d+|"
            r"time limit exceeded|too many retries",
        ),
        (
            Reason.NETWORK,
            r"connection (?:refused|timed out|reset|lost|closed)|timed out|timeout|"
            r"network|no route|unreachable|connect to .* failed|lost connection|"
            r"temporary dns|dns (?:failure|error|lookup)|hop count|routing loop|loops back",
        ),
        (
            Reason.SYSTEM,
            r"system (?:error|failure|problem)|internal error|server error|out of memory|"
            r"too big|too large|message size|local error|queue|pipe to|"
            r"(?:delivery|mail) program|disk (?:full|error)|i/o error|config(?:uration)? error",
        ),
        (
            Reason.POLICY,
            r"policy|not allowed|not permitted|refused|rejected|denied|prohibited|"
            r"relay(?:ing)? (?:not permitted|denied)|not authori[sz]ed|unable to relay|"
            r"purported responsible|header error|line limit|syntax error",
        ),
    )
)

# Specific detail codes (RFC 3463 and the IANA registry of enhanced status codes): the
# class digit (2, 4, 5) is left out; where a code says nothing specific it is absent.
_DETAIL: dict[str, Reason] = {
    "1.1": Reason.USER_UNKNOWN,  # bad destination mailbox address
    "1.2": Reason.HOST_UNKNOWN,  # bad destination system address
    "1.3": Reason.USER_UNKNOWN,  # bad destination mailbox address syntax
    "1.6": Reason.MOVED,  # destination mailbox has moved, no forwarding address
    "1.7": Reason.POLICY,  # bad sender's mailbox address syntax: ours, not the reader's
    "1.8": Reason.POLICY,  # bad sender's system address: ours, not the reader's
    "1.10": Reason.HOST_UNKNOWN,  # recipient address has null MX (RFC 7505)
    "2.1": Reason.DISABLED,  # mailbox disabled, not accepting messages
    "2.2": Reason.MAILBOX_FULL,
    "2.3": Reason.SYSTEM,  # message length exceeds administrative limit
    "3.1": Reason.SYSTEM,  # mail system full
    "3.2": Reason.SYSTEM,  # system not accepting network messages
    "3.4": Reason.SYSTEM,  # message too big for system
    "3.5": Reason.SYSTEM,  # system incorrectly configured
    "4.1": Reason.NETWORK,  # no answer from host
    "4.2": Reason.NETWORK,  # bad connection
    "4.3": Reason.NETWORK,  # directory server failure
    "4.4": Reason.HOST_UNKNOWN,  # unable to route
    "4.6": Reason.SYSTEM,  # routing loop detected
    "4.7": Reason.EXPIRED,  # delivery time expired
    "7.13": Reason.DISABLED,  # user account disabled
    "7.17": Reason.MOVED,  # mailbox owner has changed
    "7.18": Reason.DISABLED,  # domain owner has changed
    "7.20": Reason.AUTH,  # no passing DKIM signature
    "7.21": Reason.AUTH,
    "7.22": Reason.AUTH,
    "7.23": Reason.AUTH,  # SPF validation failed
    "7.24": Reason.AUTH,  # SPF validation error
    "7.25": Reason.AUTH,  # reverse DNS validation failed
    "7.26": Reason.AUTH,  # multiple authentication checks failed
    "7.27": Reason.AUTH,  # sender address has null MX
    "7.28": Reason.RATE_LIMITED,  # mail flood detected
    "7.29": Reason.AUTH,  # ARC validation failure
}

STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_of(text: str) -> str | None:
    """The first enhanced status code in a text, as "5.1.1"."""
    found = STATUS.search(text)
    return ".".join(found.groups()) if found else None


def classify(status: str | None, reply: str = "", *, code: int | None = None) -> Reason:
    """The reason for a failure, from its status code and what the server said.

    `status` is the enhanced code ("5.1.1"), `reply` the server's words (the diagnostic
    code, or the SMTP reply), `code` the three-digit SMTP reply code if known.
    """
    detail = status.split(".", 1)[1] if status else None
    if detail in _DETAIL:
        specific = _DETAIL[detail]
        # 5.1.1 "user unknown" is what the code says; but a 5.4.4 or 5.1.x that names a
        # blocklist is a refusal of the sender dressed as an address problem.
        worded = _by_words(reply)
        if worded in (Reason.BLOCKED, Reason.SPAM, Reason.AUTH) and specific is not Reason.AUTH:
            return worded
        return specific
    worded = _by_words(reply)
    if worded is not None:
        return worded
    return _by_code(code, detail)


def _by_words(reply: str) -> Reason | None:
    for reason, pattern in _WORDS:
        if pattern.search(reply):
            return reason
    return None


# When neither the detail nor the words say more: the status code's subject (RFC 3463).
_SUBJECT = {"7": Reason.POLICY, "4": Reason.NETWORK, "3": Reason.SYSTEM, "5": Reason.SYSTEM}


def _by_code(code: int | None, detail: str | None = None) -> Reason:
    """A bare reply code says little: 552 and 452 are storage, 421 a server shedding load;
    a bare 550 is as likely a policy refusal as a dead address, so it stays unknown."""
    subject = detail.split(".", 1)[0] if detail else None
    if subject in _SUBJECT:
        return _SUBJECT[subject]
    if code in (552, 452):
        return Reason.MAILBOX_FULL
    if code == 421:
        return Reason.RATE_LIMITED
    return Reason.UNKNOWN
