"""Rate limits an outsider cannot turn against the service: bounded keys, closed when blind."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import func, select

from mailer import create_app
from mailer.mail.tokens import make_preferences_token
from mailer.models import Editor, Subscriber
from mailer.platform.db import db
from mailer.platform.settings import load_settings
from mailer.web import rate_limits
from tests.conftest import free_port
from tests.helpers import csrf_token, hidden_fields, signup

HUGE = 60_000  # just under the 64 KB a request may carry
# A key is its kind, its window and a fixed-size hash: nothing a request sends grows it.
KEY_BYTES = 120
KEY_MEMORY_BYTES = 200


def count_subscribers(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Subscriber))


def limit_keys(app) -> dict[bytes, int]:
    """Every rate-limit key in the app's Redis, with the bytes Redis spends on it."""
    client = redis.Redis.from_url(app.config["MAILER"].redis_url)
    try:
        return {key: client.memory_usage(key) or 0 for key in client.scan_iter("mailer:limits:*")}
    finally:
        client.close()


def from_ip(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def frozen_clock(monkeypatch):
    """The limiter's clock, at the start of the next hour (keys expire by real time)."""
    now = {"t": float((int(time.time()) // 3600 + 1) * 3600)}
    monkeypatch.setattr(rate_limits, "clock", lambda: now["t"])
    return now


# --- (a) refused requests leave nothing behind ----------------------------------


def form_fields(client) -> dict[str, str]:
    return hidden_fields(client.get("/subscribe").get_data(as_text=True))


def test_refused_signups_with_huge_addresses_create_no_limit_keys(app, client):
    fields = form_fields(client)
    token = fields["csrf_token"]
    for n in range(100):
        huge = f"{n}" + "x" * HUGE
        no_csrf = client.post("/subscribe", data={"email": huge})
        invalid = client.post("/subscribe", data={**fields, "email": huge})
        as_json = client.post("/subscribe", json={"email": huge}, headers={"X-CSRFToken": token})
        assert no_csrf.status_code == invalid.status_code == as_json.status_code == 400
    assert limit_keys(app) == {}
    assert count_subscribers(app) == 0


def test_a_signup_makes_only_short_fixed_size_keys(app, client):
    local = "a" * 64
    for n in range(5):
        assert signup(client, f"{local}{n}@{'b' * 60}.example.org").status_code == 200
    keys = limit_keys(app)
    assert keys
    assert all(len(key) <= KEY_BYTES for key in keys), max(keys, key=len)
    assert all(memory <= KEY_MEMORY_BYTES for memory in keys.values()), keys
    assert not any(b"example.org" in key for key in keys)  # hashed: Redis names no reader


def test_redis_memory_stays_flat_under_a_flood_of_refused_signups(app, client):
    client_redis = redis.Redis.from_url(app.config["MAILER"].redis_url)
    try:
        fields = form_fields(client)
        before = client_redis.info("memory")["used_memory"]
        for n in range(300):
            client.post("/subscribe", data={**fields, "email": f"{n}" + "y" * HUGE})
        grown = client_redis.info("memory")["used_memory"] - before
    finally:
        client_redis.close()
    assert grown < 1_000_000, f"Redis grew {grown} bytes"  # before the fix: about 20 MB


@pytest.mark.slow  # two Argon2 checks
def test_failed_logins_with_a_huge_address_make_short_keys(app, console_editor):
    client = app.test_client()
    fields = hidden_fields(client.get("/editor/login").get_data(as_text=True))
    for n in range(2):
        response = client.post(
            "/editor/login", data={**fields, "email": f"{n}" + "z" * HUGE, "password": "no"}
        )
        assert response.status_code == 401
    keys = limit_keys(app)
    assert keys and all(len(key) <= KEY_BYTES for key in keys), keys


# --- (b) a limiter that cannot count refuses logins and signups -----------------


@pytest.fixture
def blind(environment):
    """An app whose Redis is a port where nothing listens."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    blind_app = create_app(load_settings(environ={**environment, "MAILER_REDIS_URL": dead}))
    yield blind_app
    blind_app.extensions["mailer.platform.db"]["engine"].dispose()


def test_signups_are_refused_with_a_503_when_the_limiter_cannot_count(app, blind):
    client = blind.test_client()
    page = signup(client, "blind@example.org")
    assert page.status_code == 503
    assert "try again" in page.get_data(as_text=True).lower()
    assert page.mimetype == "text/html"
    as_json = client.post(
        "/subscribe",
        json={"email": "blind2@example.org"},
        headers={"X-CSRFToken": csrf_token(client)},
    )
    assert as_json.status_code == 503
    assert "try again" in as_json.get_json()["error"].lower()
    assert "Retry-After" in as_json.headers
    assert count_subscribers(app) == 0


def test_logins_are_refused_with_a_503_when_the_limiter_cannot_count(app, blind, console_editor):
    email, password, editor_id = console_editor
    client = blind.test_client()
    fields = hidden_fields(client.get("/editor/login").get_data(as_text=True))
    response = client.post("/editor/login", data={**fields, "email": email, "password": password})
    assert response.status_code == 503
    assert "try again" in response.get_data(as_text=True).lower()
    assert client.get("/editor/").status_code == 302  # not logged in
    with app.app_context():
        assert db.session.get(Editor, editor_id).last_login_at is None  # nothing checked


def test_a_reader_can_still_change_their_choice_when_the_limiter_cannot_count(app, blind):
    """Fails open: the signed link names the reader, and a refusal would keep mail coming."""
    from mailer.models import SubscriberStatus

    with app.app_context():
        reader = Subscriber(
            email="reader@example.org",
            email_key="reader@example.org",
            status=SubscriberStatus.ACTIVE,
        )
        db.session.add(reader)
        db.session.commit()
        token = make_preferences_token(reader.id, reader.link_key)
    client = blind.test_client()
    path = f"/preferences/{token}"
    fields = hidden_fields(client.get(path).get_data(as_text=True))
    response = client.post(path, data={**fields, "frequency": "weekly", "keep_sections": "1"})
    assert response.status_code == 200
    with app.app_context():
        assert db.session.get(Subscriber, reader.id).frequency.value == "weekly"


# --- (c) the ceiling on keys per window ---------------------------------------


def address_keys(app) -> list[bytes]:
    return [key for key in limit_keys(app) if b":address:" in key]


def test_addresses_beyond_the_ceiling_share_one_counter(app, settings_override, frozen_clock):
    settings_override(rate_limit_max_keys=5, signup_rate_limit_address="2 per hour")
    for n in range(5):  # each address its own counter, up to the ceiling
        assert signup(from_ip(app, f"198.51.100.{n}"), f"own{n}@example.org").status_code == 200
    # Beyond it, every new address counts on one shared counter of the same limit.
    for n in range(2):
        assert signup(from_ip(app, f"192.0.2.{n}"), f"new{n}@example.org").status_code == 200
    assert signup(from_ip(app, "192.0.2.9"), "new9@example.org").status_code == 429
    # Addresses seen before the ceiling keep their own counters.
    assert signup(from_ip(app, "198.51.100.20"), "own0@example.org").status_code == 200
    assert len(address_keys(app)) <= 5 + 2  # the counters, the shared one and the census


def test_a_flood_of_distinct_addresses_cannot_grow_redis_past_the_ceiling(
    app, settings_override, frozen_clock
):
    settings_override(rate_limit_max_keys=10)
    client = app.test_client()
    for n in range(60):
        signup(client, f"flood{n}@example.org")
    assert len(address_keys(app)) <= 10 + 2


def test_the_ceiling_is_per_window(app, settings_override, frozen_clock):
    settings_override(rate_limit_max_keys=3, signup_rate_limit_address="1 per hour")
    for n in range(3):
        assert signup(app.test_client(), f"early{n}@example.org").status_code == 200
    assert signup(app.test_client(), "late0@example.org").status_code == 200  # the shared one
    assert signup(app.test_client(), "late1@example.org").status_code == 429
    frozen_clock["t"] += 2 * 3600  # two windows on: nothing weighs any more
    assert signup(app.test_client(), "late1@example.org").status_code == 200


# --- per network -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234:5600::/56"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),
        ("unknown", "unknown"),
    ],
)
def test_the_network_of_an_address(address, network):
    assert rate_limits.network_of(address) == network


def test_signups_from_one_network_share_a_limit(app, settings_override):
    settings_override(signup_rate_limit_network="3 per minute")
    for n in range(3):
        assert signup(from_ip(app, f"203.0.113.{n}"), f"net{n}@example.org").status_code == 200
    assert signup(from_ip(app, "203.0.113.99"), "net9@example.org").status_code == 429
    assert signup(from_ip(app, "2001:db8:0:1::1"), "six1@example.org").status_code == 200
    assert signup(from_ip(app, "198.51.100.1"), "elsewhere@example.org").status_code == 200
    assert count_subscribers(app) == 5


@pytest.mark.slow  # thirty Argon2 checks
def test_failed_logins_from_one_network_are_stopped_before_the_password_check(app, console_editor):
    from mailer.web.editor.account import LOGIN_LIMIT_PER_NETWORK

    email, password, _id = console_editor
    allowed = int(LOGIN_LIMIT_PER_NETWORK.split()[0])
    for n in range(allowed):  # two an address: far below the per-IP limit
        client = from_ip(app, f"203.0.113.{n // 2}")
        fields = hidden_fields(client.get("/editor/login").get_data(as_text=True))
        failed = client.post("/editor/login", data={**fields, "email": email, "password": "no"})
        assert failed.status_code == 401
    fresh = from_ip(app, "203.0.113.250")
    fields = hidden_fields(fresh.get("/editor/login").get_data(as_text=True))
    blocked = fresh.post("/editor/login", data={**fields, "email": email, "password": "no"})
    assert blocked.status_code == 429
    at_home = from_ip(app, "198.51.100.7")
    fields = hidden_fields(at_home.get("/editor/login").get_data(as_text=True))
    ok = at_home.post("/editor/login", data={**fields, "email": email, "password": password})
    assert ok.status_code == 302


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILER_SIGNUP_RATE_LIMIT_NETWORK", "lots"),
        ("MAILER_RATE_LIMIT_MAX_KEYS", "0"),
        ("MAILER_RATE_LIMIT_REDIS_URL", "localhost:6379"),
    ],
)
def test_limit_settings_are_checked_at_start_up(variable, value):
    from mailer.platform.settings import ConfigError

    with pytest.raises(ConfigError, match=variable):
        load_settings(environ={"MAILER_SECRET_KEY": "x" * 32, variable: value})
