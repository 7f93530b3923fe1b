"""The services a benchmark run starts for itself: Redis, an SMTP sink, a database, workers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mailer import create_app
from mailer.config import load_settings, normalize_database_url
from mailer.migrate import upgrade
from mailer.models import Base

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/mailer_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def ensure_tools() -> None:
    """smtp-sink (Postfix's C sink) and wrk come from Debian's packages."""
    missing = [
        pkg for tool, pkg in (("smtp-sink", "postfix"), ("wrk", "wrk")) if not shutil.which(tool)
    ]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def database_url(sqlite_dir: Path) -> str:
    """PostgreSQL when it answers (a mailer_bench database is made), else SQLite."""
    url = normalize_database_url(os.environ.get("MAILER_BENCH_DATABASE_URL", DEFAULT_PG))
    if url.startswith("postgresql"):
        admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                name = url.rsplit("/", 1)[1]
                exists = connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                )
                if not exists:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            return url
        except OperationalError as exc:
            print(f"PostgreSQL unavailable ({type(exc).__name__}); using SQLite", file=sys.stderr)
        finally:
            admin.dispose()
    return f"sqlite:///{sqlite_dir / 'bench.db'}"


class Services:
    def __init__(self, *, sink: str = "smtp-sink", database: str | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
        self.processes: list[subprocess.Popen] = []
        self.redis_port = free_port()
        self.processes.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        self.smtp_port = free_port()
        if sink == "smtp-sink":
            self.processes.append(
                subprocess.Popen(
                    ["smtp-sink", "-u", "nobody", f"127.0.0.1:{self.smtp_port}", "1000"],
                    stdout=subprocess.DEVNULL,
                )
            )
        else:  # a Python sink, for the smoke run on machines without Postfix
            self.processes.append(self._python_sink())
        _wait(lambda: _connects(self.redis_port), "redis-server")
        _wait(lambda: _connects(self.smtp_port), "the SMTP sink")
        self.database_url = database or database_url(self.directory)
        self.environ = {
            "MAILER_ENV": "testing",
            "MAILER_SECRET_KEY": "benchmark-secret-key-0123456789",
            "MAILER_DATABASE_URL": self.database_url,
            "MAILER_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "MAILER_SMTP_HOST": "127.0.0.1",
            "MAILER_SMTP_PORT": str(self.smtp_port),
            "MAILER_BASE_URL": "https://news.example.org",
            "MAILER_FROM": "Example News <news@news.example.org>",
            "MAILER_LIST_ID": "digest.news.example.org",
        }
        self.app = create_app(load_settings(environ=self.environ))

    def _python_sink(self) -> subprocess.Popen:
        code = (
            "import sys, threading\n"
            "from aiosmtpd.controller import Controller\n"
            "class Sink:\n"
            "    async def handle_DATA(self, server, session, envelope):\n"
            "        return '250 OK'\n"
            f"c = Controller(Sink(), hostname='127.0.0.1', port={self.smtp_port}); c.start()\n"
            "threading.Event().wait()\n"
        )
        return subprocess.Popen([sys.executable, "-c", code])

    def reset_database(self) -> None:
        engine = create_engine(self.database_url)
        with engine.begin() as connection:
            Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
        upgrade(self.database_url)
        redis.Redis(port=self.redis_port).flushdb()  # our own Redis, started above

    def start_worker(self, concurrency: int) -> subprocess.Popen:
        worker = subprocess.Popen(
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
                str(concurrency),
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env={**os.environ, **self.environ},
        )
        celery = self.app.extensions["celery"]
        _wait(lambda: bool(celery.control.ping(timeout=0.5)), "the celery worker", timeout=60)
        return worker

    def stop_worker(self, worker: subprocess.Popen) -> None:
        worker.terminate()
        worker.wait(timeout=60)

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.app.extensions["mailer.db"]["engine"].dispose()
        shutil.rmtree(self.directory, ignore_errors=True)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def worker_rss_peaks(worker: subprocess.Popen) -> list[float]:
    """Peak resident memory (VmHWM, MB) of each pool process of a celery worker."""
    peaks = []
    for pid in _children(worker.pid):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(round(int(line.split()[1]) / 1024, 1))
    return peaks
