"""DKIM: every mail signed, the signature checked by dkimpy's verifier after the SMTP server."""

from __future__ import annotations

import os
import re

import dkim
import pytest
from sqlalchemy import select, update

from mailer import delivery
from mailer.platform.dkim_keys import dns_record, generate, write_key
from mailer.platform.settings import ConfigError, load_settings
from tests.helpers import add_article, add_readers, make_digest_here

RSA_SELECTOR, ED_SELECTOR = "mail2026", "mail2026-ed25519"


def record_value(line: str) -> bytes:
    """The TXT value of a zone-file line: its quoted strings joined, as a resolver gives them."""
    return "".join(re.findall(r'"([^"]*)"', line)).encode()


@pytest.fixture
def keys(tmp_path):
    rsa_key, ed_key = generate(use_ed25519=False), generate(use_ed25519=True)
    write_key(rsa_key, tmp_path / "rsa.pem")
    write_key(ed_key, tmp_path / "ed.pem")
    records = {
        f"{RSA_SELECTOR}._domainkey.news.example.org.": record_value(
            dns_record(RSA_SELECTOR, "news.example.org", rsa_key)
        ),
        f"{ED_SELECTOR}._domainkey.news.example.org.": record_value(
            dns_record(ED_SELECTOR, "news.example.org", ed_key)
        ),
    }
    return tmp_path / "rsa.pem", tmp_path / "ed.pem", records


def dns(records):
    def lookup(name, timeout=5):
        return records.get(name.decode() if isinstance(name, bytes) else name)

    return lookup


def verified(raw: bytes, records, index: int = 0) -> bool:
    return dkim.DKIM(raw).verify(idx=index, dnsfunc=dns(records))


def send_digest_here(app, monkeypatch) -> None:
    """Makes the digest and sends its batch in this process, through the test SMTP server."""
    digest_id = make_digest_here(app, monkeypatch)
    with app.app_context():
        delivery.send_batch(digest_id)


def test_every_newsletter_is_signed_and_verifies_after_the_smtp_server(
    app, outbox, settings_override, keys, monkeypatch
):
    rsa_file, _ed_file, records = keys
    settings_override(dkim_selector=RSA_SELECTOR, dkim_private_key_file=str(rsa_file))
    readers = add_readers(app, "signed", 3)
    add_article(app, "“Signed” — Çavuşoğlu", "https://news.example.org/signed")
    send_digest_here(app, monkeypatch)
    assert outbox.count() == 3
    for raw in outbox.raw:
        assert raw.startswith(b"DKIM-Signature:")
        assert verified(raw, records)
        signature = raw.split(b"\r\n", 1)[0].decode()
        assert "c=relaxed/relaxed" in signature and "a=rsa-sha256" in signature
        assert "d=news.example.org" in signature
        signed = signature.split(" h=", 1)[1].split(";", 1)[0].split(":")
        assert signed[:2] == ["from", "from"]  # oversigned
        for name in (
            "to",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
            "list-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "feedback-id",
        ):
            assert name in signed
    # Each reader's own parts are covered: a changed link or address breaks the signature.
    raw = outbox.raw[0]
    assert not verified(raw.replace(b"unsubscribe/", b"unsubscribe/X", 1), records)
    assert not verified(raw.replace(readers[0].encode(), b"someone@example.org"), records)


def test_an_ed25519_signature_is_added_beside_the_rsa_one(
    app, outbox, settings_override, keys, monkeypatch
):
    rsa_file, ed_file, records = keys
    settings_override(
        dkim_selector=RSA_SELECTOR,
        dkim_private_key_file=str(rsa_file),
        dkim_ed25519_key_file=str(ed_file),
    )
    add_readers(app, "both", 1)
    add_article(app, "Both", "https://news.example.org/both")
    send_digest_here(app, monkeypatch)
    [raw] = outbox.raw
    assert raw.count(b"DKIM-Signature:") == 2
    assert verified(raw, records, 0) and verified(raw, records, 1)
    assert b"a=rsa-sha256" in raw and b"a=ed25519-sha256" in raw


def test_the_confirmation_and_the_test_copy_are_signed_too(app, outbox, settings_override, keys):
    from mailer.delivery.confirmations import send_confirmation
    from mailer.delivery.controls import send_test
    from mailer.models import Subscriber, SubscriberStatus, utcnow
    from mailer.platform.db import db

    rsa_file, _ed_file, records = keys
    settings_override(dkim_selector=RSA_SELECTOR, dkim_private_key_file=str(rsa_file))
    # Made directly, not through the form: a worker of the suite would send it unsigned.
    [pending] = add_readers(app, "new", 1, SubscriberStatus.PENDING)
    add_article(app, "Test", "https://news.example.org/test")
    with app.app_context():
        db.session.execute(update(Subscriber).values(confirmation_requested_at=utcnow()))
        db.session.commit()
        subscriber_id = db.session.scalar(select(Subscriber.id))
        assert send_confirmation(subscriber_id) == "sent"
        assert send_test("editor@example.org", "desk@example.org")
    confirmation = outbox.wait_for(pending)[0]
    test_copy = outbox.wait_for("editor@example.org")[0]
    for raw in outbox.raw:
        assert verified(raw, records)
    assert confirmation["Subject"] and str(test_copy["Subject"]).startswith("[TEST]")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"not a key at all", "not an unencrypted PEM key"),
        ("rsa1024", "RSA key of 2048 bits or more"),
    ],
)
def test_a_key_that_cannot_sign_stops_the_start_naming_the_variable(tmp_path, content, message):
    path = tmp_path / "key.pem"
    if content == "rsa1024":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        path.write_bytes(
            weak.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif content is not None:
        path.write_bytes(content)
    environ = {
        "MAILER_SECRET_KEY": "a-long-enough-secret-key",
        "MAILER_DKIM_SELECTOR": "mail",
        "MAILER_DKIM_PRIVATE_KEY_FILE": str(path),
    }
    with pytest.raises(ConfigError, match="MAILER_DKIM_PRIVATE_KEY_FILE") as error:
        load_settings(environ=environ)
    assert message in str(error.value)


@pytest.mark.parametrize("ed25519", [False, True])
def test_dkim_keygen_writes_a_private_key_and_prints_the_record(app, tmp_path, ed25519):
    out = tmp_path / "key.pem"
    args = ["dkim-keygen", "--selector", "s1", "--domain", "news.example.org", "--out", str(out)]
    result = app.test_cli_runner().invoke(args=args + (["--ed25519"] if ed25519 else []))
    assert result.exit_code == 0, result.output
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    last = result.output.strip().splitlines()[-1]
    kind = "ed25519" if ed25519 else "rsa"
    assert re.fullmatch(rf's1\._domainkey\.news\.example\.org TXT "v=DKIM1; k={kind}; p=.+"', last)
    assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', last))
    again = app.test_cli_runner().invoke(args=args)
    assert again.exit_code != 0 and "exists already" in again.output  # never overwrites a key
