"""`make chaos`: faults no unit test can stage, against the Procfile's worker on PostgreSQL.

python -m tools.chaos                      # both scenarios
python -m tools.chaos --only kills --readers 100000

1. PostgreSQL restarted in the middle of a 10,000-reader send.
2. Ten SIGKILLs of worker pool processes during one 100,000-reader send.
3. A second host joins a 100,000-reader send and dies: workers from a second checkout
   (its own clone, virtualenv and worker name; Redis, the database and the relay
   those of the first) join the send in progress, and every process of that checkout
   is SIGKILLed half-way. The first host finishes the send alone.

The relay is a counting SMTP sink in this process, so duplicates and losses are
counted at the wire, not taken from mailer's own ledger. The reconciler runs
every few seconds, as beat runs it every minute. Prints a Markdown table for
docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from mailer import create_app
from mailer.access.api_tokens import create_api_token
from mailer.delivery.reconciler import reconcile
from mailer.models import (
    Article,
    Base,
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    SendClaim,
    utcnow,
)
from mailer.platform.db import db
from mailer.platform.settings import load_settings, normalize_database_url
from tools.stack import ROOT, Stack, free_port, procfile

DATABASE = "postgresql://postgres@127.0.0.1:5432/mailer_chaos"


class CountingSink:
    """An SMTP server that only counts who got a message."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            for address in envelope.rcpt_tos:
                self.received[address] += 1
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())


@dataclass
class Outcome:
    scenario: str
    readers: int
    seconds: float
    duplicates: int  # readers who got more than one message
    lost: int  # readers who got nothing
    unknown: int  # rows mailer reports in doubt
    faults: str


def fresh_database(url: str) -> str:
    url = normalize_database_url(url)
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


def seed(app, readers: int) -> str:
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    # Readers of long standing: welcomed already, as imported ones are.
                    "INSERT INTO subscribers (email, email_key, status, created_at, confirmed_at,"
                    " welcome_sent_at, link_key, legacy_links) SELECT 'c' || n || '@example.org',"
                    " 'c' || n || '@example.org', 'active', now(), now(), now(),"
                    " md5(random()::text), false FROM generate_series(1, :n) AS n"
                ),
                {"n": readers},
            )
        db.session.add(
            Article(
                title="Chaos",
                url="https://news.example.org/chaos",
                source="chaos",
                ready_at=utcnow(),
            )
        )
        db.session.commit()
        return create_api_token(f"chaos-{time.time_ns()}")


def finish(app, digest_id: int, sink: CountingSink, readers: int, timeout: float) -> float:
    """Runs the reconciler every few seconds until the digest is no longer sending."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            with app.app_context():
                reconcile()
                status = db.session.scalar(select(Digest.status).where(Digest.id == digest_id))
            if status != DigestStatus.SENDING:
                return time.monotonic() - began
        except OperationalError:
            pass  # the database is restarting: as beat would, try again next round
        time.sleep(3)
    raise SystemExit(f"digest {digest_id} still sending after {timeout} s ({sink.total()} sent)")


def outcome(
    app,
    scenario: str,
    digest_id: int,
    sink: CountingSink,
    readers: int,
    seconds: float,
    faults: str,
) -> Outcome:
    with app.app_context():
        unknown = db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.UNKNOWN)
        )
    everyone = {f"c{n}@example.org" for n in range(1, readers + 1)}
    got = set(sink.received)
    return Outcome(
        scenario,
        readers,
        seconds,
        duplicates=sum(1 for n in sink.received.values() if n > 1),
        lost=len(everyone - got),
        unknown=unknown or 0,
        faults=faults,
    )


def run(scenario: str, readers: int, fault) -> Outcome:
    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    url = fresh_database(os.environ.get("MAILER_CHAOS_DATABASE_URL", DATABASE))
    stack = Stack(
        MAILER_ENV="production",
        MAILER_DATABASE_URL=url,
        MAILER_SMTP_PORT=str(controller.port),
        MAILER_SMTP_TIMEOUT="2",  # one message within 8 s, under the stale time
        MAILER_CLAIM_STALE_SECONDS="10",
        MAILER_LOG_LEVEL="WARNING",
    )
    try:
        stack.start("redis", "web", "worker")
        app = create_app(load_settings(environ=stack.env))
        token = seed(app, readers)
        began = time.monotonic()
        response = subprocess.run(
            [
                "curl",
                "-s",
                "-X",
                "POST",
                f"{stack.base_url}/api/digests",
                "-H",
                f"Authorization: Bearer {token}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        digest_id = int(response.stdout.split('"id":')[1].split(",")[0])
        faults = fault(stack, sink, readers)
        finish(app, digest_id, sink, readers, timeout=1800)
        seconds = time.monotonic() - began
        return outcome(app, scenario, digest_id, sink, readers, seconds, faults)
    finally:
        stack.close()
        controller.stop()


def wait_for_sent(sink: CountingSink, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while sink.total() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sink.total()} sent; wanted {count} before the fault")
        time.sleep(0.05)


def restart_postgresql(stack: Stack, sink: CountingSink, readers: int) -> str:
    wait_for_sent(sink, readers // 5)
    version = sorted(os.listdir("/etc/postgresql"))[0]
    at = sink.total()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True
    )
    return f"PostgreSQL restarted after {at} sent"


def kill_pool_processes(stack: Stack, sink: CountingSink, readers: int) -> str:
    worker = stack.processes["worker"]
    kills = 0
    rng = random.Random(7)
    wait_for_sent(sink, readers // 20)
    while kills < 10:
        children = _children(worker.pid)
        if children:
            os.kill(rng.choice(children), 9)
            kills += 1
        time.sleep(max(1.0, readers / 100_000 * 4))  # spread over the send
        if sink.total() >= readers * 0.95:
            break
    return f"{kills} pool processes SIGKILLed"


class SecondHost:
    """A second checkout of mailer, as on another machine: cloned, its own virtualenv."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mailer-second-host-"))
        self.checkout = self.directory / "mailer"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(self.checkout)], check=True)
        venv = self.checkout / ".venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "-e", str(self.checkout)],
            check=True,
        )
        self.bin = venv / "bin"
        self.process: subprocess.Popen | None = None

    def start_worker(self, stack: Stack) -> None:
        """The Procfile's worker line with a worker name of its own. The settings are the
        first host's (the same secret, base URL and sender), with Redis, the database and
        the relay pointing at the first host's."""
        settings = {
            k: v
            for k, v in stack.env.items()
            if k.startswith("MAILER_") and k not in {"MAILER_WEB_BIND", "MAILER_MAIL_DIRECTORY"}
        }
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.directory), **settings}
        command = [*shlex.split(procfile()["worker"]), "--hostname", "second@%h"]
        log = (self.directory / "worker.log").open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=self.checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pool_pids(self) -> list[int]:
        return _children(self.process.pid) if self.process else []

    def kill_everything(self) -> None:
        """SIGKILL to every process of this checkout: a host that loses power."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def second_host_joins_and_dies(host: SecondHost):
    def fault(stack: Stack, sink: CountingSink, readers: int) -> str:
        wait_for_sent(sink, readers // 10)
        host.start_worker(stack)
        engine = create_engine(stack.env["MAILER_DATABASE_URL"])

        def sent_by_second_host() -> int:
            pids = host.pool_pids()
            if not pids:
                return 0
            workers = [f"{socket.gethostname()}:{pid}" for pid in pids]
            with engine.connect() as connection:
                return (
                    connection.scalar(
                        select(func.count())
                        .select_from(Delivery)
                        .join(SendClaim, SendClaim.id == Delivery.claim_id)
                        .where(
                            SendClaim.worker.in_(workers), Delivery.status == DeliveryStatus.SENT
                        )
                    )
                    or 0
                )

        deadline = time.monotonic() + 120
        while sink.total() < readers // 2 or sent_by_second_host() == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the second host sent nothing within two minutes")
            time.sleep(0.5)
        sent = sent_by_second_host()
        at = sink.total()
        host.kill_everything()
        engine.dispose()
        return f"second host joined at {readers // 10:,}, sent {sent:,}, killed at {at:,}"

    return fault


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["postgresql", "kills", "second-host"])
    parser.add_argument("--readers", type=int)
    args = parser.parse_args()
    results = []
    if args.only in (None, "postgresql"):
        results.append(
            run("PostgreSQL restarted mid-send", args.readers or 10_000, restart_postgresql)
        )
    if args.only in (None, "kills"):
        results.append(
            run("ten SIGKILLs of pool processes", args.readers or 100_000, kill_pool_processes)
        )
    if args.only in (None, "second-host"):
        host = SecondHost()
        try:
            results.append(
                run(
                    "a second host joins and dies",
                    args.readers or 100_000,
                    second_host_joins_and_dies(host),
                )
            )
        finally:
            host.close()
    print()
    print("| scenario | readers | time | duplicates | lost | rows unknown | faults |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        print(
            f"| {r.scenario} | {r.readers:,} | {r.seconds:.0f} s | {r.duplicates} | {r.lost} "
            f"| {r.unknown} | {r.faults} |"
        )
    failed = [r for r in results if r.duplicates or r.lost > r.unknown or r.unknown > 10]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
