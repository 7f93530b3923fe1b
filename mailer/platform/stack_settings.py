"""The settings that shape a mail, as the running stack has them, for the CLI to compare.

`mailer send-digest` run from a second terminal reads .env and that terminal's
environment; if the stack was started with other values exported only in its own
shell, the mail would mix both. The workers note their values in Redis (and the
reconciler renews the note every minute), and the CLI refuses to send when its own
differ.
"""

from __future__ import annotations

import contextlib
import json

import redis
from flask import current_app

from mailer.platform.redis_client import redis_client
from mailer.platform.settings import Settings

KEY = "mailer:stack-settings"
TTL = 300  # the reconciler renews it each minute: gone a few minutes after the stack stops
SHAPING = {
    "base_url": "MAILER_BASE_URL",
    "from_address": "MAILER_FROM",
    "list_name": "MAILER_LIST_NAME",
    "list_id": "MAILER_LIST_ID",
}


def _values(settings: Settings) -> dict[str, str]:
    return {field: str(getattr(settings, field)) for field in SHAPING}


def publish() -> None:
    with contextlib.suppress(redis.RedisError):  # no Redis: no running stack to compare with
        redis_client().set(KEY, json.dumps(_values(current_app.config["MAILER"])), ex=TTL)


def differences(settings: Settings) -> list[str]:
    """`VARIABLE: 'stack value' here 'our value'` for each mail-shaping setting that differs."""
    try:
        stored = redis_client().get(KEY)
    except redis.RedisError:
        return []
    if not isinstance(stored, bytes):
        return []  # no stack has said what it uses
    theirs = json.loads(stored)
    ours = _values(settings)
    return [
        f"{SHAPING[field]}: the running stack has {theirs.get(field)!r}, this shell {value!r}"
        for field, value in ours.items()
        if theirs.get(field) != value
    ]
