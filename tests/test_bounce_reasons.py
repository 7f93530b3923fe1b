"""A reason for each bounce, and the policy that decides from it what changes for the
reader. The replies are the ones the big providers and MTAs send (as documented by them
and seen in the wild); the corpus of whole real messages is tested in test_bounces.py."""

from __future__ import annotations

import pytest

from mailer.bounces.policy import Decision, decide
from mailer.bounces.reasons import Reason, classify, status_of

pytestmark = pytest.mark.unit

REPLIES = [
    ("550-5.1.1 The email account that you tried to reach does not exist.", Reason.USER_UNKNOWN),
    ("552-5.2.2 The email account that you tried to reach is over quota.", Reason.MAILBOX_FULL),
    ("550-5.2.1 The email account that you tried to reach is disabled.", Reason.DISABLED),
    ("550-5.7.26 This mail is unauthenticated, which poses a security risk.", Reason.AUTH),
    ("550 5.7.23 SPF validation failed", Reason.AUTH),
    (
        "550-5.7.1 Our system has detected that this message is likely unsolicited mail.",
        Reason.SPAM,
    ),
    ("421-4.7.28 Our system has detected an unusual rate of mail.", Reason.RATE_LIMITED),
    (
        "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Part of their "
        "network is on our block list (S3150).",
        Reason.BLOCKED,
    ),
    (
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        Reason.BLOCKED,
    ),
    ("554 5.7.9 Message not accepted for policy reasons.", Reason.POLICY),
    (
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume",
        Reason.RATE_LIMITED,
    ),
    (
        "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in virtual "
        "mailbox table",
        Reason.USER_UNKNOWN,
    ),
    ("5.4.4 Host or domain name not found. Name service error", Reason.HOST_UNKNOWN),
    ("550 5.1.10 Recipient address has null MX", Reason.HOST_UNKNOWN),
    ("551 5.1.6 User has moved; please try <new@example.org>", Reason.MOVED),
    ("450 4.2.2 Mailbox Full", Reason.MAILBOX_FULL),
    ("5.0.0 retry timeout exceeded", Reason.EXPIRED),
    ("4.4.7 Delivery time expired", Reason.EXPIRED),
    ("4.4.1 Connection timed out", Reason.NETWORK),
    ("550 5.5.0 Requested action not taken: mailbox unavailable", Reason.USER_UNKNOWN),
    ("550 5.1.1 blocked using bl.spamcop.net", Reason.BLOCKED),
    ("552 5.3.4 Message size exceeds fixed limit", Reason.SYSTEM),
]


@pytest.mark.parametrize(("reply", "reason"), REPLIES, ids=[r[:40] for r, _ in REPLIES])
def test_the_reason_of_a_reply(reply, reason):
    assert classify(status_of(reply), reply) == reason


def test_a_bare_reply_code_says_little():
    assert classify(None, "", code=552) == Reason.MAILBOX_FULL
    assert classify(None, "", code=421) == Reason.RATE_LIMITED
    assert classify(None, "", code=550) == Reason.UNKNOWN


@pytest.mark.parametrize(
    ("reason", "permanent", "decision"),
    [
        (Reason.USER_UNKNOWN, True, Decision.BOUNCED),
        (Reason.HOST_UNKNOWN, True, Decision.BOUNCED),
        (Reason.MOVED, True, Decision.BOUNCED),
        (Reason.USER_UNKNOWN, False, Decision.SOFT),
        (Reason.MAILBOX_FULL, True, Decision.SOFT),
        (Reason.DISABLED, True, Decision.SOFT),
        (Reason.EXPIRED, True, Decision.SOFT),
        (Reason.RATE_LIMITED, False, Decision.SOFT),
        (Reason.BLOCKED, True, Decision.NONE),
        (Reason.SPAM, True, Decision.NONE),
        (Reason.AUTH, True, Decision.NONE),
        (Reason.POLICY, True, Decision.NONE),
        (Reason.AUTO_REPLY, True, Decision.NONE),
        (Reason.DELIVERED, True, Decision.NONE),
        (Reason.COMPLAINT, True, Decision.UNSUBSCRIBED),
        (Reason.UNKNOWN, True, Decision.SOFT),
    ],
)
def test_the_policy_changes_a_reader_only_for_what_the_bounce_says_of_them(
    reason, permanent, decision
):
    assert decide(reason, permanent=permanent) == decision


def test_a_sender_side_refusal_never_bounces_a_reader():
    for reply, reason in REPLIES:
        if reason in (Reason.BLOCKED, Reason.SPAM, Reason.AUTH, Reason.POLICY):
            assert decide(classify(status_of(reply), reply), permanent=True) == Decision.NONE
