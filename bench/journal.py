"""What the send journal costs per message: `python -m bench.journal`.

Starts a redis-server of its own on a free port (nothing on disk, as in the tests) and
Postfix's smtp-sink on another, then times, for a few rounds each:

- the journal alone: `Journal.attempting` as the send loop calls it (each row noted
  before its send, with the one sent before it), open to discard;
- the send loop's shape over SMTP: one reused `SMTPConnection` sending an 18 KB message
  per row to the sink, without a journal; with the note made before the send (its round
  trip on its own); and with the note made while the relay answers the envelope, as the
  send loop does (`before_body`). The differences are what the journal adds to a message.

Each figure is the fastest round (the machine is shared), as wall time and as this
process's CPU time per message. Results:
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial

import redis

from bench.services import _connects, ensure_tools, free_port
from mailer.delivery.journal import Journal
from mailer.mail.smtp import SMTPConnection
from mailer.platform.settings import Settings

MESSAGE = b"Subject: journal\r\n\r\n" + b"x" * 76 + b"\r\n"
MESSAGE = MESSAGE * (18_800 // len(MESSAGE))


def _wait(check: Callable[[], bool], what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def _start_redis(directory: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(lambda: _connects(port), "redis-server", process)
    return process, port


def _start_sink() -> tuple[subprocess.Popen, int]:
    ensure_tools()
    port = free_port()
    process = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    _wait(lambda: _connects(port), "smtp-sink", process)
    return process, port


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _per_message(started: tuple[float, float], messages: int) -> tuple[float, float]:
    """(wall, this process's CPU) seconds per message since `started`."""
    wall, cpu = _clocks()
    return (wall - started[0]) / messages, (cpu - started[1]) / messages


def _journal_alone(client: redis.Redis, claim_id: int, messages: int) -> tuple[float, float]:
    journal = Journal(client, claim_id)
    journal.open()
    started = _clocks()
    previous: int | None = None
    for delivery_id in range(1, messages + 1):
        journal.attempting(delivery_id, sent_before=previous)
        previous = delivery_id
    journal.sent(messages)
    elapsed = _per_message(started, messages)
    journal.close()
    opened, sent, inflight = journal.read()
    assert opened and len(sent) == messages + 1 and inflight == messages  # +1: the marker
    journal.discard()
    return elapsed


def _send_loop(
    connection: SMTPConnection,
    client: redis.Redis | None,
    claim_id: int,
    messages: int,
    *,
    alongside: bool = True,
) -> tuple[float, float]:
    """The shape of sender._send_all: ready, note the row, send."""
    journal = Journal(client, claim_id) if client is not None else None
    if journal is not None:
        journal.open()
    started = _clocks()
    for delivery_id in range(1, messages + 1):
        connection.ready()
        note = None
        if journal is not None:
            note = partial(journal.attempting, delivery_id, sent_before=delivery_id - 1 or None)
            if not alongside:
                note()
                note = None
        connection.send(f"reader{delivery_id}@example.org", MESSAGE, before_body=note)
    if journal is not None:
        journal.sent(messages)
    elapsed = _per_message(started, messages)
    if journal is not None:
        journal.close()
    if journal is not None:
        assert journal.read()[2] == messages
        journal.discard()
    return elapsed


def _line(name: str, rounds: list[tuple[float, float]], base: tuple[float, float] | None) -> str:
    wall, cpu = min(r[0] for r in rounds), min(r[1] for r in rounds)
    text = f"{name:<34} wall {wall * 1e6:6.1f} µs, CPU {cpu * 1e6:6.1f} µs"
    if base is not None:
        text += f"  ({(wall - base[0]) * 1e6:+.1f} / {(cpu - base[1]) * 1e6:+.1f} µs)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000, help="rows per claim")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n, rounds = args.messages, range(1, args.rounds + 1)
    with tempfile.TemporaryDirectory() as directory:
        redis_process, redis_port = _start_redis(directory)
        sink, sink_port = _start_sink()
        try:
            client = redis.Redis(port=redis_port)
            settings = Settings(
                secret_keys=("bench",), smtp_port=sink_port, from_address="news@example.org"
            )
            connection = SMTPConnection(settings)
            alone = [_journal_alone(client, r, n) for r in rounds]
            bare, before, alongside = [], [], []
            for r in rounds:  # interleaved, so a busy spell of the machine hits each
                bare.append(_send_loop(connection, None, 100 + r, n))
                before.append(_send_loop(connection, client, 200 + r, n, alongside=False))
                alongside.append(_send_loop(connection, client, 300 + r, n))
            connection.close()
            client.close()
        finally:
            for process in (sink, redis_process):
                process.terminate()
                process.wait(timeout=10)
    print(f"redis-py {redis.__version__}, {n} messages a claim, fastest of {args.rounds} rounds")
    print(_line("journal alone, per message", alone, None))
    base = (min(r[0] for r in bare), min(r[1] for r in bare))
    print(_line("SMTP, no journal", bare, None))
    print(_line("SMTP, noted before the send", before, base))
    print(_line("SMTP, noted while the relay answers", alongside, base))


if __name__ == "__main__":
    main()
