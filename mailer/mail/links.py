"""The one place that builds absolute URLs for mails, in requests and in workers alike."""

from __future__ import annotations

from flask import current_app

from mailer.mail.tokens import (
    TEST_UNSUBSCRIBE_TOKEN,
    make_confirm_token,
    make_preferences_token,
    make_unsubscribe_token,
)


def external_url(endpoint: str, **values: object) -> str:
    # Bound without a request so workers build the same links as the web side;
    # the host always comes from MAILER_BASE_URL, never from a request header.
    adapter = current_app.url_map.bind("mailer.invalid")
    path = adapter.build(endpoint, values)
    return current_app.config["MAILER"].base_url.rstrip("/") + path


def confirm_url(subscriber_id: int, link_key: str) -> str:
    return external_url("public.confirm", token=make_confirm_token(subscriber_id, link_key))


def unsubscribe_url(subscriber_id: int, link_key: str) -> str:
    token = make_unsubscribe_token(subscriber_id, link_key)
    return external_url("public.unsubscribe", token=token)


def preferences_url(subscriber_id: int, link_key: str) -> str:
    token = make_preferences_token(subscriber_id, link_key)
    return external_url("public.preferences", token=token)


def archive_url(digest_id: int | None = None) -> str | None:
    """The digest's page in the public archive (or the archive), if there is an archive."""
    if not current_app.config["MAILER"].archive:
        return None
    if digest_id is None:
        return external_url("archive.index")
    return external_url("archive.show", digest_id=digest_id)


def test_unsubscribe_url() -> str:
    """Where the unsubscribe link of a test copy leads: a page that says it was a test."""
    return external_url("public.unsubscribe", token=TEST_UNSUBSCRIBE_TOKEN)


def test_preferences_url() -> str:
    """The choices link of a test copy: a page that says it was a test."""
    return external_url("public.preferences", token=TEST_UNSUBSCRIBE_TOKEN)
