"""What a bounce changes for its reader: one table, written once, from the reason.

Only a bounce that says the address is dead makes a reader `bounced`, and only when the
refusal is permanent. Trouble with the reader's mailbox counts as a soft bounce (so many
in a row, MAILER_SOFT_BOUNCE_LIMIT, and the reader is `bounced`). A refusal of the sender
(a blocklist, a spam verdict, failed authentication, a policy) never changes the reader:
it is counted per receiving domain and shown to editors, because one blocklisting at one
big provider would otherwise mark every reader there as a dead address. A complaint
unsubscribes; auto-replies and delivery notices change nothing.
"""

from __future__ import annotations

from enum import StrEnum

from mailer.bounces.reasons import Reason


class Decision(StrEnum):
    BOUNCED = "bounced"  # the reader is marked bounced
    SOFT = "soft"  # counted; the reader is bounced after the limit in a row
    UNSUBSCRIBED = "unsubscribed"  # a complaint: unsubscribed and suppressed
    NONE = "none"  # the reader is left as they are


ADDRESS_DEAD = frozenset({Reason.USER_UNKNOWN, Reason.HOST_UNKNOWN, Reason.MOVED})
MAILBOX_SIDE = frozenset(
    {
        Reason.MAILBOX_FULL,
        Reason.DISABLED,
        Reason.EXPIRED,
        Reason.NETWORK,
        Reason.SYSTEM,
        Reason.RATE_LIMITED,
    }
)
SENDER_SIDE = frozenset({Reason.BLOCKED, Reason.SPAM, Reason.AUTH, Reason.POLICY})
NOT_FAILURES = frozenset({Reason.AUTO_REPLY, Reason.DELIVERED})


def decide(reason: Reason, *, permanent: bool) -> Decision:
    """The policy, in one place: the README's table is this function."""
    if reason is Reason.COMPLAINT:
        return Decision.UNSUBSCRIBED
    if reason in ADDRESS_DEAD:
        # A 4.x.x "no such user" is a server in trouble more often than a dead address.
        return Decision.BOUNCED if permanent else Decision.SOFT
    if reason in MAILBOX_SIDE:
        return Decision.SOFT
    if reason in SENDER_SIDE or reason in NOT_FAILURES:
        return Decision.NONE
    # Unknown: a good reader lost to a guess costs more than a dead address mailed again.
    return Decision.SOFT
