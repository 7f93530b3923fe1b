"""VERP tokens: an id and a truncated HMAC, unforgeable, short, and the previous format
still read for mails already sent."""

from __future__ import annotations

import pytest

from mailer.mail.verp import (
    MailKind,
    MailRef,
    envelope_sender,
    make_token,
    read_token,
    ref_of_address,
)
from mailer.platform.settings import load_settings


def Settings(**values):
    """Settings of these values alone: never the environment's, nor a checkout's .env."""
    return load_settings(environ={}, **values)


SECRET = "a-test-secret-that-is-long-enough"
SETTINGS = Settings(
    secret_keys=(SECRET,), bounce_localpart="bounces", from_address="n@news.example.org"
)
pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "ref", [MailRef(MailKind.DELIVERY, 1), MailRef(MailKind.CONFIRMATION, 2**31 - 1)]
)
def test_a_new_token_names_its_mail_and_fits_a_local_part(ref):
    token = make_token(ref, SETTINGS)
    assert read_token(token, SETTINGS) == ref
    assert token == token.lower() and token.startswith(f"{ref.kind.value}{ref.id}-")
    longest = Settings(secret_keys=(SECRET,), bounce_localpart="b" * 20)
    local = envelope_sender(ref, longest).rpartition("@")[0]
    assert len(local) <= 64  # RFC 5321 §4.5.3.1.1
    assert ref_of_address(envelope_sender(ref, SETTINGS).upper(), SETTINGS) == ref


def test_a_tampered_token_names_nothing():
    token = make_token(MailRef(MailKind.DELIVERY, 4242), SETTINGS)
    head, mac = token.split("-")
    flipped = mac[:-1] + ("a" if mac[-1] != "a" else "b")
    for forged in (
        f"{head}-{flipped}",  # the MAC changed
        f"d4243-{mac}",  # another row under this one's MAC
        f"c4242-{mac}",  # another kind of mail
        f"{head}-{mac[:-1]}",  # cut short
        token + "a",
    ):
        assert read_token(forged, SETTINGS) is None, forged


def test_a_token_of_another_secret_names_nothing_and_a_rotated_one_still_does():
    ref = MailRef(MailKind.DELIVERY, 77)
    other = Settings(secret_keys=("another-mailer-installation-key",))
    assert read_token(make_token(ref, other), SETTINGS) is None
    rotated = Settings(secret_keys=("the-new-secret-after-rotation", SECRET))
    assert read_token(make_token(ref, SETTINGS), rotated) == ref


def test_a_token_of_the_previous_format_still_resolves():
    """Made by the AES-block token this release replaced (secret SECRET), as mailer made it
    at 262e217 (the key labelled b"mailer.verp"), as in mails sent before: their bounces
    still name the mail."""
    assert read_token("ibwcaceqhlxmbmgl4rlr2xdsp4", SETTINGS) == MailRef(MailKind.DELIVERY, 4242)
    address = "Bounces+72MAZFLC3JMQL4KRCSY73E2FQA@bounces.example.org"
    assert ref_of_address(address, SETTINGS) == MailRef(MailKind.CONFIRMATION, 7)
    assert read_token("jbwcaceqhlxmbmgl4rlr2xdsp4", SETTINGS) is None  # tampered
