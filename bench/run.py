"""`make bench`: the stack as shipped against the fastest plain senders, as ratios.

python -m bench.run                          # 10,000 and 100,000 readers, every table
python -m bench.run --readers 1000 --smoke   # the code path only (SQLite, a Python sink)
python -m bench.run --segments 1 16 --segment-readers 5000   # the segments table's sizes

Every row starts from a fresh database and the Procfile's redis, web and worker
(bench/shipped.py). Baselines run against the same sink in the same run: plain
smtplib in forked processes of a fresh interpreter (bench/raw.py) and Postfix's
smtp-source (bench/wire.py). The segments table (bench/segments.py) compares a daily run
to readers of many sets of sections with the single-segment run of the same bench.
Results are appended to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench.pages import pages_table, print_pages
from bench.raw import run_in_fresh_process
from bench.segments import MAX_SEGMENTS, print_segments, segments_table
from bench.services import ensure_tools
from bench.shipped import SendResult, ShippedStack
from bench.signup import signup_benchmark
from bench.wire import smtp_source
from mailer.platform.dkim_keys import generate, write_key

RESULTS = Path(__file__).resolve().parent / "results.jsonl"
SIDE_READERS = 20_000  # the scaling curve's and the DKIM table's runs
SEGMENT_READERS = 100_000  # the segments table's daily readers (issue #13)
SEGMENTS = [1, 16, 64]
BASELINE_MESSAGES = 20_000
WIRE_SESSIONS = (1, 2, 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--smoke", action="store_true", help="small run, Python sink, no record")
    parser.add_argument("--signup-seconds", type=int, default=10, help="0 skips the signup run")
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        default=[1, 2, 4],
        help="worker pool processes for the scaling curve; none to skip",
    )
    parser.add_argument(
        "--dkim-readers", type=int, default=SIDE_READERS, help="readers for the DKIM table; 0 skips"
    )
    parser.add_argument(
        "--segments",
        type=int,
        nargs="*",
        default=None,
        help=f"sets of sections for the segments table, each 1 to {MAX_SEGMENTS} (1 is the "
        "single-segment baseline); none to skip. Default 1 16 64, with --smoke 1 16",
    )
    parser.add_argument(
        "--segment-readers",
        type=int,
        default=None,
        help=f"daily readers of the segments table (default {SEGMENT_READERS:,}, with --smoke "
        "1,000); a quarter as many weekly readers are added",
    )
    parser.add_argument(
        "--pages",
        type=int,
        nargs="*",
        default=[1, 100],
        help="finished digests for the console pages table (History, dashboard); none to skip",
    )
    parser.add_argument(
        "--page-readers", type=int, default=100_000, help="readers of each of those digests"
    )
    args = parser.parse_args()
    _segment_defaults(parser, args)
    if not args.smoke:
        ensure_tools()
    workers = os.cpu_count() or 1  # what the Procfile's worker starts: one process per CPU
    shipped = ShippedStack(sink="python" if args.smoke else "smtp-sink")
    record: dict = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": shipped.database_url.split(":", 1)[0],
        },
        "workers": workers,
    }
    try:
        record["send"] = [
            headline_row(shipped, readers, workers, wire=not args.smoke) for readers in args.readers
        ]
        print_headline(record["send"])
        if args.segments:
            record["segments"] = segments_table(shipped, args.segments, args.segment_readers)
            print_segments(record["segments"])
        if args.pages and not args.smoke:
            record["pages"] = pages_table(shipped, args.pages, args.page_readers)
            print_pages(record["pages"])
        if not args.smoke:
            record["scaling"] = [scaling_row(shipped, n) for n in args.scaling]
            print_scaling(record["scaling"])
            if args.dkim_readers:
                record["dkim"] = dkim_table(shipped, args.dkim_readers, workers)
                print_dkim(record["dkim"])
            if args.signup_seconds:
                record["signup"] = signup_benchmark(shipped, args.signup_seconds)
                print_signup(record["signup"])
    finally:
        shipped.close()
    if not args.smoke:
        with RESULTS.open("a") as out:
            out.write(json.dumps(record) + "\n")


def _segment_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The smoke run's segments table is small: two rows of 1,000 readers, about 20 s."""
    if args.segments is None:
        args.segments = [1, 16] if args.smoke else SEGMENTS
    if args.segment_readers is None:
        args.segment_readers = 1_000 if args.smoke else SEGMENT_READERS
    if any(not 1 <= n <= MAX_SEGMENTS for n in args.segments):
        parser.error(f"--segments: each between 1 and {MAX_SEGMENTS}")
    if args.segments and args.segment_readers < max(args.segments):
        parser.error("--segment-readers: at least one daily reader per set of sections")


def _send(shipped: ShippedStack, readers: int, worker_settings=None, pems=(), raw_processes=0):
    """A fresh stack with `readers` imported and the articles pushed: baseline, then mailer."""
    shipped.start(worker_settings)
    imported = shipped.import_readers(readers)
    shipped.push_articles()
    data = shipped.sample_message()
    raw = run_in_fresh_process(
        shipped.sink_port, data, raw_processes, min(readers, BASELINE_MESSAGES), list(pems)
    )
    try:
        result: SendResult = shipped.send(readers)
    finally:
        shipped.stop()
    return imported, data, raw, result


def headline_row(shipped: ShippedStack, readers: int, workers: int, *, wire: bool) -> dict:
    imported, data, raw, result = _send(shipped, readers, raw_processes=workers)
    sources = {}
    if wire:
        for sessions in WIRE_SESSIONS:
            sources[sessions] = smtp_source(
                shipped.sink_port, sessions, BASELINE_MESSAGES, len(data)
            )
    return {
        "readers": readers,
        "import_seconds": round(imported, 2),
        "raw_messages_per_second": round(raw),
        "smtp_source_messages_per_second": {str(s): round(r) for s, r in sources.items()},
        "mailer_messages_per_second": round(result.messages_per_second),
        "ratio": round(result.messages_per_second / raw, 3),
        "ratio_to_smtp_source_4": (
            round(result.messages_per_second / sources[4], 3) if 4 in sources else None
        ),
        "trigger_answer_seconds": round(result.trigger_seconds, 3),
        "materialize_seconds": round(result.materialize_seconds, 3),
        "first_mail_seconds": round(result.first_mail_seconds, 3),
        "total_seconds": round(result.total_seconds, 2),
        "message_bytes": len(data),
        "worker_peak_rss_mb": result.worker_rss_mb,
    }


def scaling_row(shipped: ShippedStack, processes: int) -> dict:
    _, _, raw, result = _send(
        shipped,
        SIDE_READERS,
        {"MAILER_WORKER_CONCURRENCY": str(processes)},
        raw_processes=processes,
    )
    return {
        "workers": processes,
        "raw_messages_per_second": round(raw),
        "mailer_messages_per_second": round(result.messages_per_second),
    }


def dkim_table(shipped: ShippedStack, readers: int, workers: int) -> list[dict]:
    """Unsigned, RSA-2048, and RSA-2048 plus Ed25519, each against a raw sender that
    signs every message with the same keys through OpenSSL."""
    rsa_path = shipped.directory / "dkim-rsa.pem"
    ed_path = shipped.directory / "dkim-ed.pem"
    if not rsa_path.exists():
        write_key(generate(use_ed25519=False), rsa_path)
        write_key(generate(use_ed25519=True), ed_path)
    rsa = {"MAILER_DKIM_SELECTOR": "bench", "MAILER_DKIM_PRIVATE_KEY_FILE": str(rsa_path)}
    modes = {
        "none": ({}, []),
        "rsa-2048": (rsa, [rsa_path]),
        "rsa+ed25519": ({**rsa, "MAILER_DKIM_ED25519_KEY_FILE": str(ed_path)}, [rsa_path, ed_path]),
    }
    rows = []
    for mode, (settings, pems) in modes.items():
        _, _, raw, result = _send(shipped, readers, settings, pems, raw_processes=workers)
        rows.append(
            {
                "mode": mode,
                "readers": readers,
                "raw_messages_per_second": round(raw),
                "mailer_messages_per_second": round(result.messages_per_second),
            }
        )
    return rows


def print_headline(rows: list[dict]) -> None:
    print()
    print(
        f"{'readers':>8} {'import s':>9} {'raw msg/s':>10} {'smtp-source 1/2/4':>18} "
        f"{'mailer msg/s':>13} {'ratio':>6} {'vs src4':>8} {'answer s':>9} "
        f"{'materialize s':>14} {'first mail s':>13} {'total s':>8} {'msg KB':>7} "
        "worker peak RSS MB"
    )
    for r in rows:
        source = "/".join(str(v) for v in r["smtp_source_messages_per_second"].values()) or "-"
        versus = f"{r['ratio_to_smtp_source_4']:.2f}" if r["ratio_to_smtp_source_4"] else "-"
        print(
            f"{r['readers']:>8} {r['import_seconds']:>9.1f} {r['raw_messages_per_second']:>10} "
            f"{source:>18} {r['mailer_messages_per_second']:>13} {r['ratio']:>6.2f} "
            f"{versus:>8} {r['trigger_answer_seconds']:>9.2f} {r['materialize_seconds']:>14.2f} "
            f"{r['first_mail_seconds']:>13.2f} {r['total_seconds']:>8.1f} "
            f"{r['message_bytes'] / 1024:>7.1f} {r['worker_peak_rss_mb']}"
        )


def print_scaling(rows: list[dict]) -> None:
    print()
    print(f"{'workers':>8} {'raw msg/s':>10} {'mailer msg/s':>13} {'ratio':>6}")
    for r in rows:
        raw, mailer = r["raw_messages_per_second"], r["mailer_messages_per_second"]
        print(f"{r['workers']:>8} {raw:>10} {mailer:>13} {mailer / raw:>6.2f}")


def print_dkim(rows: list[dict]) -> None:
    print()
    print(f"{'dkim':>12} {'readers':>8} {'raw msg/s':>10} {'mailer msg/s':>13} {'ratio':>6}")
    for r in rows:
        raw, mailer = r["raw_messages_per_second"], r["mailer_messages_per_second"]
        print(f"{r['mode']:>12} {r['readers']:>8} {raw:>10} {mailer:>13} {mailer / raw:>6.2f}")


def print_signup(result: dict) -> None:
    print()
    print(f"{'signup':>14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("mailer", "durable_insert"):
        r = result[name]
        print(
            f"{name:>14} {r['requests_per_second']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )
    print(f"{'ratio':>14} {result['ratio']:>8.2f}")


if __name__ == "__main__":
    main()
