"""Real services for the tests: a Redis server, an SMTP server, a database, Celery workers.

Everything is started by the suite on free ports; the user's own Redis is never touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, delete, text

from mailer import create_app, sections
from mailer.models import Base
from mailer.platform.migrate import upgrade
from mailer.platform.settings import Settings, load_settings, normalize_database_url
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Redis -------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own, on a free port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.exit("redis-server is not installed; `make test` installs it.", returncode=2)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), timeout=10, message="redis-server did not start")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart_empty(self) -> None:
        """Kills the server and starts a new one on the same port with nothing in it."""
        self.process.kill()  # type: ignore[union-attr]
        self.process.wait(timeout=10)  # type: ignore[union-attr]
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


# --- SMTP --------------------------------------------------------------------


class Outbox:
    """aiosmtpd handler that keeps every message and lets tests wait for them.

    `refuse(address, reply, times)` makes the server answer RCPT TO for that
    address with `reply` (e.g. "450 4.2.1 Try later") the next `times` times.
    """

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.arrivals: list[float] = []  # time.time() of each message
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refusals: dict[str, list] = {}
        self.delay = 0.0  # seconds the server takes before accepting each message
        self.pipelining = True  # advertise RFC 2920 PIPELINING, as Postfix and most relays do
        self._condition = threading.Condition()

    def refuse(self, address: str, reply: str, times: int = 1_000_000) -> None:
        with self._condition:
            self.refusals[address.lower()] = [reply, times]

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        with self._condition:
            rule = self.refusals.get(address.lower())
            if rule and rule[1] > 0:
                rule[1] -= 1
                return rule[0]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._condition:
            self.messages.append(message)  # type: ignore[arg-type]
            self.raw.append(envelope.original_content)
            self.arrivals.append(time.time())
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._condition.notify_all()
        return "250 OK"

    def clear(self) -> None:
        with self._condition:
            self.messages.clear()
            self.raw.clear()
            self.arrivals.clear()
            self.envelopes.clear()
            self.refusals.clear()
            self.delay = 0.0
            self.pipelining = True

    def count(self) -> int:
        with self._condition:
            return len(self.messages)

    def _matching(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if str(m["To"]).lower() == address.lower()]

    def to(self, address: str) -> list[EmailMessage]:
        with self._condition:
            return self._matching(address)

    def wait_for(self, address: str, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
        """Waits until `address` has received `count` messages; returns them."""
        with self._condition:
            ok = self._condition.wait_for(lambda: len(self._matching(address)) >= count, timeout)
            found = self._matching(address)
        assert ok, f"{address} received {len(found)} messages, expected {count}"
        return found


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Controller, Outbox]]:
    outbox = Outbox()
    controller = Controller(outbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, outbox
    controller.stop()


@pytest.fixture
def outbox(smtp_server: tuple[Controller, Outbox]) -> Outbox:
    smtp_server[1].clear()
    return smtp_server[1]


# --- Tiers ---------------------------------------------------------------------
# unit: no service at all; integration: the app with real Redis, SMTP and database;
# browser: Chromium against a live stack; slow: seconds each (resilience, bench smoke).
# `make test` runs them all; `make test-fast` leaves out slow and browser.

SERVICE_FIXTURES = {"app", "client", "worker", "environment", "database_url", "redis_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") or item.get_closest_marker("integration"):
            continue
        uses_services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.integration if uses_services else pytest.mark.unit)


# --- Database ----------------------------------------------------------------

POSTGRESQL_URL = os.environ.get("MAILER_TEST_DATABASE_URL", "")
# Without MAILER_TEST_DATABASE_URL the suite runs on SQLite alone, and says so once.
DATABASES = ["sqlite", "postgresql"] if POSTGRESQL_URL else ["sqlite"]
NO_POSTGRESQL = "PostgreSQL run skipped: MAILER_TEST_DATABASE_URL is not set"


def pytest_report_header() -> str:
    return f"databases: {', '.join(DATABASES)}" + ("" if POSTGRESQL_URL else f" ({NO_POSTGRESQL})")


def pytest_terminal_summary(terminalreporter) -> None:
    if not POSTGRESQL_URL:
        terminalreporter.write_line(NO_POSTGRESQL, yellow=True)


def database_kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgresql":
        url = normalize_database_url(POSTGRESQL_URL)
        engine = create_engine(url)
        with engine.begin() as connection:
            Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'mailer.db'}"
    upgrade(url)
    return url


# --- The app and its workers --------------------------------------------------


@pytest.fixture(scope="session")
def environment(
    database_url: str, redis_server: RedisServer, smtp_server: tuple[Controller, Outbox]
) -> dict[str, str]:
    """The MAILER_* variables shared by the app under test and its worker processes."""
    return {
        "MAILER_ENV": "testing",
        "MAILER_SECRET_KEY": SECRET,
        "MAILER_DATABASE_URL": database_url,
        # A Redis database per SQL database: a worker of one run never takes the other's tasks.
        "MAILER_REDIS_URL": redis_server.url_for(DATABASES.index(database_kind(database_url))),
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(smtp_server[0].port),
        "MAILER_BASE_URL": "https://news.example.org",
        "MAILER_FROM": "Example News <news@news.example.org>",
        "MAILER_LIST_ID": "digest.news.example.org",
        "MAILER_LIST_NAME": "Example News",
        "MAILER_SIGNUP_MIN_SECONDS": "0",
        "MAILER_SIGNUP_RATE_LIMIT_IP": "1000 per minute",
        "MAILER_SIGNUP_RATE_LIMIT_ADDRESS": "1000 per minute",
        "MAILER_SIGNUP_RATE_LIMIT_NETWORK": "1000 per minute",
        "MAILER_SEND_BATCH_SIZE": "20",
        "MAILER_SEND_RETRY_BASE_SECONDS": "0.5",
        "MAILER_SEND_MAX_ATTEMPTS": "3",
        # Each reply within 1 s, so one message within 4 s; a claim is stale after 8.
        "MAILER_SMTP_TIMEOUT": "1",
        "MAILER_CLAIM_STALE_SECONDS": "8",
    }


@pytest.fixture(scope="session")
def app(environment: dict[str, str]):
    application = create_app(load_settings(environ=environment))
    yield application
    application.extensions["mailer.platform.db"]["engine"].dispose()


SESSION_WORKERS: list[Worker] = []  # the `worker` fixture's, alive for the whole session


def _quiesce(app) -> None:
    """Before a test cleans up: no task of the previous test is queued, held for later
    (a retry's countdown) or still running in the session's workers."""
    celery = app.extensions["celery"]
    celery.control.purge()
    for worker in SESSION_WORKERS:
        if worker.process is None:
            continue
        inspect = celery.control.inspect(destination=[worker.node], timeout=2, limit=1)
        held = [
            task["request"]["id"]
            for tasks in (inspect.scheduled() or {}).values()
            for task in tasks
        ]
        held += [task["id"] for tasks in (inspect.reserved() or {}).values() for task in tasks]
        if held:
            celery.control.revoke(held)
        wait_until(
            lambda: _idle(inspect.active()),  # noqa: B023 - used at once
            timeout=30,
            message="a task of the previous test was still running",
        )


def _idle(active: dict | None) -> bool:
    """A worker's reply to `inspect active`: none at all is no proof that it is idle."""
    return active is not None and not any(active.values())


@pytest.fixture(autouse=True)
def _clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """A clean database and no rate-limit counters for every test that uses the app."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    _quiesce(app)
    engine = app.extensions["mailer.platform.db"]["engine"]
    # Nothing of the previous test runs any more: one wipe, no retries.
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))
    sections.forget()  # the sections a previous test's stack kept for a few seconds
    client = redis.Redis.from_url(app.config["MAILER"].redis_url)
    # Only mailer's own keys (queues, journals, counters, rate limits): flushing
    # would also drop the broker's queue bindings.
    for key in client.scan_iter("mailer:*"):
        client.delete(key)
    client.close()
    yield


@pytest.fixture
def client(app):
    return app.test_client()


EDITOR = "desk@example.org"
EDITOR_PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def editor_password_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(EDITOR_PASSWORD)  # Argon2 costs 0.15 s: once a session


@pytest.fixture
def console_editor(app, editor_password_hash) -> tuple[str, str, int]:
    """The editor desk@example.org: (email, password, id), not logged in."""
    from mailer.models import Editor
    from mailer.platform.db import db

    with app.app_context():
        editor = Editor(email=EDITOR, password_hash=editor_password_hash)
        db.session.add(editor)
        db.session.commit()
        return EDITOR, EDITOR_PASSWORD, editor.id


@pytest.fixture
def console(client, console_editor):
    """A client logged in as the editor desk@example.org.

    The login form has tests of its own (test_editor.py); here the session is
    opened as a successful login opens it, without two Argon2 runs per test.
    """
    from mailer.web.editor import open_session

    with client.session_transaction() as store:
        open_session(store, console_editor[2], 0)
    return client


@pytest.fixture
def settings_override(app) -> Iterator[Callable[..., Settings]]:
    """Changes settings for one test: settings_override(signup_min_seconds=5)."""
    original = app.config["MAILER"]

    def override(**changes: object) -> Settings:
        app.config["MAILER"] = app.config["MAILER"].replace(**changes)
        return app.config["MAILER"]

    yield override
    app.config["MAILER"] = original


class Worker:
    """A real `celery worker` process against the test Redis, database and SMTP server."""

    def __init__(self, environment: dict[str, str], log_path: Path, concurrency: int = 2) -> None:
        self.environment = environment
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None

    def start(self, app) -> None:
        env = {**os.environ, **self.environment, "PYTHONUNBUFFERED": "1"}
        self.node = f"test-{os.getpid()}-{id(self)}@{socket.gethostname()}"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while the worker runs
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "workers.app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                self.node,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() takes the children too
        )
        celery = app.extensions["celery"]
        wait_until(
            # This worker's own reply (another worker may answer first), taken as it comes.
            lambda: (
                self.process.poll() is None
                and bool(celery.control.ping(destination=[self.node], timeout=0.5, limit=1))
            ),
            timeout=30,
            message=f"celery worker did not start; see {self.log_path}",
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as the OOM killer would."""
        os.killpg(self.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
        self.process.wait(timeout=10)  # type: ignore[union-attr]
        self.process = None
        self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # A cold shutdown: the tests wait for nothing the worker still holds.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.log.close()


@pytest.fixture(scope="session")
def worker(app, environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """Celery workers running for the whole session (per database)."""
    process = Worker(environment, tmp_path_factory.mktemp("worker") / "worker.log")
    process.start(app)
    SESSION_WORKERS.append(process)
    yield process
    SESSION_WORKERS.remove(process)
    # At the session's end nothing waits for the worker: a SIGKILL saves its 2 s shutdown.
    process.kill()


@pytest.fixture
def isolated(environment, redis_server, tmp_path):
    """An app whose broker is a Redis database no other worker listens on."""

    def make(redis_url: str, extra: dict[str, str]):
        env = {
            **environment,
            "MAILER_REDIS_URL": redis_url,
            "MAILER_SEND_BATCH_SIZE": "40",
            **extra,
        }
        app = create_app(load_settings(environ=env))
        return app, env

    apps = []

    def factory(redis_url: str | None = None, extra: dict[str, str] | None = None):
        # Databases 4 and 5 of the suite's Redis: one per SQL database run.
        own_db = 4 + int(environment["MAILER_REDIS_URL"].rsplit("/", 1)[1])
        app, env = make(redis_url or redis_server.url_for(own_db), extra or {})
        apps.append(app)
        return app, env

    yield factory
    for app in apps:
        app.extensions["mailer.platform.db"]["engine"].dispose()


@pytest.fixture
def quiet(app, isolated):
    """An app and client on a broker no worker listens on, so queued tasks stay to be counted."""
    import redis as redis_lib

    quiet_app, _env = isolated()
    broker = redis_lib.Redis.from_url(quiet_app.config["MAILER"].redis_url)
    for key in [b"celery", *broker.scan_iter("mailer:*")]:
        broker.delete(key)
    broker.close()
    return quiet_app, quiet_app.test_client()
