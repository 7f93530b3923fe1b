"""Helpers the benchmarks share: ports, waiting, the tools from Debian, the database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mailer.platform.settings import normalize_database_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/mailer_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def python_sink(port: int) -> subprocess.Popen:
    """An aiosmtpd sink, for the smoke run on machines without Postfix."""
    code = (
        "import threading\n"
        "from aiosmtpd.controller import Controller\n"
        "class Sink:\n"
        "    async def handle_DATA(self, server, session, envelope):\n"
        "        return '250 OK'\n"
        f"c = Controller(Sink(), hostname='127.0.0.1', port={port}); c.start()\n"
        "threading.Event().wait()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
