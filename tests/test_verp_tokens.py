"""Return paths in mails already sent keep naming their mail: a token made before any
change to the token's code (a fixed vector, made with the key derivation of then)."""

from __future__ import annotations

import pytest

from mailer.mail.verp import MailKind, MailRef, read_token
from mailer.platform.settings import load_settings

pytestmark = pytest.mark.unit

SECRET = "a-test-secret-that-is-long-enough"
# make_token(MailRef(MailKind.DELIVERY, 4242)) with SECRET, as mailer made it at 262e217.
SENT_BEFORE = "ibwcaceqhlxmbmgl4rlr2xdsp4"


def test_a_token_in_a_mail_sent_before_still_names_its_delivery():
    settings = load_settings(environ={"MAILER_SECRET_KEY": SECRET})
    assert read_token(SENT_BEFORE, settings) == MailRef(MailKind.DELIVERY, 4242)
