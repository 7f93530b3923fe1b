"""The stack as shipped, for the benchmarks: the Procfile's own processes, driven from outside.

Redis with the production settings the README recommends (the Procfile's `redis` line:
appendonly, fsync every second), the Procfile's `worker` and `web` command lines,
PostgreSQL, Postfix's `smtp-sink` as the relay. Readers come in through
`mailer import-subscribers`, articles through the API, the digest is triggered and
polled through the API as the console does. Timings come from the ledger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.services import _children, _connects, database_url, free_port, python_sink
from mailer import create_app
from mailer.digests import runs as digests
from mailer.mail import slots
from mailer.mail.message import PreparedMessage, newsletter_headers
from mailer.models import Base
from mailer.platform.migrate import upgrade
from mailer.platform.settings import load_settings
from tools.stack import Stack, wait_for

ARTICLES = 10
SUMMARY = (
    "The council voted on Tuesday to approve a network of protected cycle lanes "
    "across the city centre, after two years of consultation. "
) * 8
# import-subscribers takes files of up to 20 MB; 200,000 rows of this shape are 14 MB.
ROWS_PER_FILE = 200_000
# Rows with sections and a frequency are half as long again: 200,000 would pass 20 MB.
CHOICE_ROWS_PER_FILE = 100_000
# A reader's (sections, frequency) cells by their number; sections are slugs joined by spaces.
Chooser = Callable[[int], tuple[str, str]]


@dataclass
class SendResult:
    readers: int
    messages_per_second: float
    materialize_seconds: float
    first_mail_seconds: float
    total_seconds: float
    trigger_seconds: float  # how long POST /api/digests took to answer
    worker_rss_mb: list[float]
    digest_id: int


class ShippedStack:
    """One fresh PostgreSQL database, smtp-sink, and the Procfile's redis, web and worker."""

    def __init__(self, *, sink: str = "smtp-sink", **settings: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mailer-shipped-"))
        self.database_url = database_url(self.directory)
        self.sink_port = free_port()
        if sink == "smtp-sink":
            self.sink = subprocess.Popen(
                ["smtp-sink", "-u", "nobody", f"127.0.0.1:{self.sink_port}", "1000"],
                stdout=subprocess.DEVNULL,
            )
        else:
            self.sink = python_sink(self.sink_port)
        wait_for(lambda: _connects(self.sink_port), "smtp-sink")
        self.settings = {
            "MAILER_ENV": "production",
            "MAILER_DATABASE_URL": self.database_url,
            "MAILER_SMTP_HOST": "127.0.0.1",
            "MAILER_SMTP_PORT": str(self.sink_port),
            "MAILER_FROM": "Example News <news@news.example.org>",
            "MAILER_LIST_ID": "digest.news.example.org",
            "MAILER_POSTAL_ADDRESS": "Example News, 1 High Street, Exampleton",
            **settings,
        }
        self.stack: Stack | None = None
        self.token = ""

    def start(self, worker_settings: dict[str, str] | None = None, *, public: bool = True) -> None:
        """A fresh database, then redis, web and worker as the Procfile starts them.

        `public`: links in mails name the site's https address (as in production); else
        the web's own http address, so that a client can log in to the console over it.
        """
        reset_database(self.database_url)
        self.stack = Stack(**self.settings, **(worker_settings or {}))
        if public:
            self.stack.env["MAILER_BASE_URL"] = "https://news.example.org"
        self.stack.start("redis", "web", "worker")
        self.token = self.stack.mailer("create-api-token", "bench").strip().splitlines()[-1]

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None

    def close(self) -> None:
        self.stop()
        self.sink.terminate()
        self.sink.wait(timeout=10)

    # --- what the site and the editor do, from outside ---

    def import_readers(self, readers: int, choose: Chooser | None = None) -> float:
        """Seconds `mailer import-subscribers` takes for `readers` new confirmed readers
        (with the sections and frequency `choose` gives each, if given)."""
        assert self.stack is not None
        files = write_csvs(self.directory, readers, choose=choose)
        began = time.perf_counter()
        for path in files:
            self.stack.mailer("import-subscribers", str(path))
        seconds = time.perf_counter() - began
        for path in files:
            path.unlink()
        return seconds

    def push_articles(self, sections: Sequence[str | None] = (None,) * ARTICLES) -> None:
        """One article per item of `sections`, filed there (None: the front page)."""
        for n, section in enumerate(sections):
            article = {
                "title": f"Story {n}: council approves the new cycle lanes",
                "url": f"https://news.example.org/story/{n}",
                "summary": SUMMARY,
                "author": "Newsroom",
                **({"section": section} if section else {}),
            }
            self.api("POST", "/api/articles", article)
        assert self.stack is not None
        # Accepted articles are queued; the worker makes them ready for the next digest.
        wait_for(lambda: self.waiting_articles() == len(sections), "the articles", timeout=60)

    def waiting_articles(self) -> int:
        return int(
            self.sql(
                "SELECT count(*) FROM articles WHERE digest_id IS NULL AND ready_at IS NOT NULL"
            )
        )

    def send(self, readers: int, timeout: float = 3600, frequency: str | None = None) -> SendResult:
        """Trigger through the API, poll progress as the console does, read the ledger.
        `readers`: how many must get it; `frequency`: the run's (none: the API's default)."""
        began_wall = datetime.now(UTC)
        began = time.perf_counter()
        body = {"frequency": frequency} if frequency else None
        digest = self.api("POST", "/api/digests", body)
        answered = time.perf_counter() - began
        deadline = time.monotonic() + timeout
        while not digest["done"]:
            if time.monotonic() > deadline:
                raise SystemExit(f"digest still sending after {timeout} s: {digest}")
            time.sleep(1.0)  # polling a running benchmark every second, as the console does
            digest = self.api("GET", f"/api/digests/{digest['id']}", None)
        rss = self.worker_rss()
        row = self.sql(
            "SELECT created_at, materialized_at, finished_at, "
            "(SELECT min(sent_at) FROM deliveries WHERE digest_id = d.id) "
            "FROM digests AS d WHERE id = :id",
            {"id": digest["id"]},
            row=True,
        )
        created, materialized, finished, first = (_aware(v) for v in row)
        counts = dict(
            self.sql(
                "SELECT status, count(*) FROM deliveries WHERE digest_id = :id GROUP BY status",
                {"id": digest["id"]},
                rows=True,
            )
        )
        distinct = self.sql(
            "SELECT count(DISTINCT subscriber_id) FROM deliveries WHERE digest_id = :id",
            {"id": digest["id"]},
        )
        # The benchmark checks its own result: every reader got exactly one message.
        if counts not in ({"SENT": readers}, {"sent": readers}) or distinct != readers:
            raise SystemExit(f"ledger mismatch: {counts}, {distinct} readers for {readers}")
        total = (finished - began_wall).total_seconds()
        return SendResult(
            readers=readers,
            messages_per_second=readers / total,
            materialize_seconds=(materialized - created).total_seconds(),
            first_mail_seconds=(first - began_wall).total_seconds(),
            total_seconds=total,
            trigger_seconds=answered,
            worker_rss_mb=rss,
            digest_id=digest["id"],
        )

    def sample_message(self) -> bytes:
        """One reader's message as the worker would send it, for the baselines."""
        assert self.stack is not None
        app = create_app(load_settings(environ=environ_for(self)))
        with app.app_context():
            settings = app.config["MAILER"]
            rendered = digests.preview()
            assert rendered is not None and rendered.slot_marker is not None
            prepared = PreparedMessage(
                settings,
                rendered,
                slots=slots.placeholders(rendered.slot_marker),
                headers=newsletter_headers(settings),
            )
            link = "https://news.example.org/unsubscribe/MTIzNDU.AbCdEfGhIjKlMnOpQrStUvWxYz0"
            choices = "https://news.example.org/preferences/MTIzNDU.AbCdEfGhIjKlMnOpQrStUvWxYz0"
            data = prepared.render(
                headers={
                    "To": "raw@example.org",
                    "Message-ID": "<raw@example.org>",
                    "List-Unsubscribe": f"<{link}>",
                },
                values=(link, choices),
            )
        app.extensions["mailer.platform.db"]["engine"].dispose()
        return data

    # --- plumbing ---

    def api(self, method: str, path: str, body: object) -> dict:
        assert self.stack is not None
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own server, http://
            self.stack.base_url + path,
            data=data if method == "POST" else None,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                **({"Content-Type": "application/json"} if data else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our own
            return json.loads(response.read())

    def sql(self, query: str, params: dict | None = None, *, row: bool = False, rows: bool = False):
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as connection:
                result = connection.execute(text(query), params or {})
                if not result.returns_rows:
                    return None
                if rows:
                    return [tuple(r) for r in result]
                if row:
                    return tuple(result.one())
                return result.scalar()
        finally:
            engine.dispose()

    def worker_rss(self) -> list[float]:
        """Peak resident memory (VmHWM, MB) of each pool process of the Procfile's worker."""
        assert self.stack is not None
        worker = self.stack.processes["worker"]
        peaks = []
        for pid in _children(worker.pid):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(round(int(line.split()[1]) / 1024, 1))
        return peaks

    def kill_worker(self) -> None:
        assert self.stack is not None
        self.stack.stop("worker", signal.SIGTERM)


def _aware(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reset_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    upgrade(url)


def write_csvs(
    directory: Path, readers: int, first: int = 1, choose: Chooser | None = None
) -> list[Path]:
    """Readers as CSV files import-subscribers takes, in files under its 20 MB limit.
    Without `choose` the files have no sections or frequency columns (every section,
    daily), so the headline's import reads exactly what it always read."""
    per_file = ROWS_PER_FILE if choose is None else CHOICE_ROWS_PER_FILE
    paths = []
    for start in range(first, first + readers, per_file):
        end = min(start + per_file, first + readers)
        path = directory / f"readers-{start}.csv"
        with path.open("w") as out:
            out.write("email,name,status,consented_at" + (",sections,frequency" if choose else ""))
            out.write("\n")
            out.writelines(_csv_row(n, choose) for n in range(start, end))
        paths.append(path)
    return paths


def _csv_row(n: int, choose: Chooser | None) -> str:
    row = f"reader{n}@example.org,Reader {n},active,2026-01-01T00:00:00Z"
    if choose is None:
        return row + "\n"
    sections, frequency = choose(n)
    return f"{row},{sections},{frequency}\n"


def environ_for(stack: ShippedStack) -> dict[str, str]:
    assert stack.stack is not None
    return {k: v for k, v in stack.stack.env.items() if k.startswith("MAILER_")} | {
        "PATH": os.environ["PATH"]
    }
