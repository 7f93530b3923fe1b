"""`make bench`: send throughput, first mail, materialization and memory, as ratios.

python -m bench.run                 # 10,000 and 100,000 readers, 2 workers
python -m bench.run --readers 1000 --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench.raw import raw_baseline
from bench.send import mailer_send, sample_message, seed
from bench.services import Services, ensure_tools
from bench.signup import signup_benchmark
from mailer.dkim_keys import generate, write_key

RESULTS = Path(__file__).resolve().parent / "results.jsonl"
SCALING_READERS = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="small run, Python sink, no record")
    parser.add_argument("--signup-seconds", type=int, default=10, help="0 skips the signup run")
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        default=[1, 2, 4],
        help="worker processes for the scaling curve (20,000 readers each); none to skip",
    )
    parser.add_argument(
        "--dkim-readers", type=int, default=20_000, help="readers for the DKIM table; 0 skips it"
    )
    args = parser.parse_args()
    if not args.smoke:
        ensure_tools()
    services = Services(sink="python" if args.smoke else "smtp-sink")
    rows = []
    try:
        for readers in args.readers:
            services.reset_database()
            seed(services, readers)
            data = sample_message(services)
            raw = raw_baseline(services.smtp_port, data, args.workers, min(readers, 20_000))
            result = mailer_send(services, readers, args.workers)
            rows.append((result, raw, len(data)))
        scaling = []
        for workers in [] if args.smoke else args.scaling:
            services.reset_database()
            seed(services, SCALING_READERS)
            data = sample_message(services)
            raw = raw_baseline(services.smtp_port, data, workers, SCALING_READERS)
            result = mailer_send(services, SCALING_READERS, workers)
            scaling.append((workers, result.messages_per_second, raw))
        signing = []
        if args.dkim_readers and not args.smoke:
            signing = dkim_table(services, args.dkim_readers, args.workers)
        signup = None
        if args.signup_seconds and not args.smoke:
            signup = signup_benchmark(services, args.signup_seconds)
    finally:
        services.close()

    print()
    print(
        f"{'readers':>8} {'raw msg/s':>10} {'mailer msg/s':>13} {'ratio':>6} "
        f"{'materialize s':>14} {'first mail s':>13} {'total s':>8} {'msg KB':>7} "
        "worker peak RSS MB"
    )
    for result, raw, size in rows:
        print(
            f"{result.readers:>8} {raw:>10.0f} {result.messages_per_second:>13.0f} "
            f"{result.messages_per_second / raw:>6.2f} {result.materialize_seconds:>14.2f} "
            f"{result.first_mail_seconds:>13.2f} {result.total_seconds:>8.1f} "
            f"{size / 1024:>7.1f} {result.worker_rss_mb}"
        )
    if scaling:
        print()
        print(f"{'workers':>8} {'raw msg/s':>10} {'mailer msg/s':>13} {'ratio':>6}")
        for workers, mailer_rate, raw in scaling:
            print(f"{workers:>8} {raw:>10.0f} {mailer_rate:>13.0f} {mailer_rate / raw:>6.2f}")
    if signing:
        print()
        print(f"{'dkim':>12} {'readers':>8} {'raw msg/s':>10} {'mailer msg/s':>13} {'ratio':>6}")
        for mode, readers, raw, mailer_rate in signing:
            print(
                f"{mode:>12} {readers:>8} {raw:>10.0f} {mailer_rate:>13.0f} "
                f"{mailer_rate / raw:>6.2f}"
            )
    if signup:
        mailer, trivial = signup
        print()
        print(f"{'signup':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for name, r in (("mailer", mailer), ("trivial", trivial)):
            print(f"{name:>8} {r.requests_per_second:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f}")
        print(f"{'ratio':>8} {mailer.requests_per_second / trivial.requests_per_second:>8.2f}")
    if args.smoke:
        return
    record = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": services.database_url.split(":", 1)[0],
        },
        "workers": args.workers,
        "send": [
            {
                "readers": r.readers,
                "raw_messages_per_second": round(raw),
                "mailer_messages_per_second": round(r.messages_per_second),
                "ratio": round(r.messages_per_second / raw, 3),
                "materialize_seconds": round(r.materialize_seconds, 3),
                "first_mail_seconds": round(r.first_mail_seconds, 3),
                "total_seconds": round(r.total_seconds, 2),
                "message_bytes": size,
                "html_bytes": r.html_bytes,
                "worker_peak_rss_mb": r.worker_rss_mb,
            }
            for r, raw, size in rows
        ],
    }
    record["dkim"] = [
        {
            "mode": mode,
            "readers": readers,
            "raw_messages_per_second": round(raw),
            "mailer_messages_per_second": round(rate),
        }
        for mode, readers, raw, rate in signing
    ]
    record["scaling"] = [
        {
            "workers": w,
            "raw_messages_per_second": round(raw),
            "mailer_messages_per_second": round(m),
        }
        for w, m, raw in scaling
    ]
    if signup:
        mailer, trivial = signup
        record["signup"] = {
            "mailer_requests_per_second": mailer.requests_per_second,
            "trivial_requests_per_second": trivial.requests_per_second,
            "ratio": round(mailer.requests_per_second / trivial.requests_per_second, 3),
            "mailer_p50_ms": mailer.p50_ms,
            "mailer_p99_ms": mailer.p99_ms,
            "trivial_p99_ms": trivial.p99_ms,
        }
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")


def dkim_table(services: Services, readers: int, workers: int) -> list[tuple]:
    """Send throughput unsigned, with RSA-2048, and with RSA-2048 plus Ed25519, each against
    a raw sender that signs every message with the same keys through OpenSSL."""
    rsa_path = services.directory / "dkim-rsa.pem"
    ed_path = services.directory / "dkim-ed.pem"
    if not rsa_path.exists():
        write_key(generate(use_ed25519=False), rsa_path)
        write_key(generate(use_ed25519=True), ed_path)
    modes = {
        "none": ({}, []),
        "rsa-2048": (
            {"MAILER_DKIM_SELECTOR": "bench", "MAILER_DKIM_PRIVATE_KEY_FILE": str(rsa_path)},
            [rsa_path.read_bytes()],
        ),
        "rsa+ed25519": (
            {
                "MAILER_DKIM_SELECTOR": "bench",
                "MAILER_DKIM_PRIVATE_KEY_FILE": str(rsa_path),
                "MAILER_DKIM_ED25519_KEY_FILE": str(ed_path),
            },
            [rsa_path.read_bytes(), ed_path.read_bytes()],
        ),
    }
    rows = []
    for mode, (environ, pems) in modes.items():
        services.reset_database()
        seed(services, readers)
        data = sample_message(services)
        raw = raw_baseline(services.smtp_port, data, workers, readers, pems)
        saved = dict(services.environ)
        services.environ.update(environ)
        try:
            result = mailer_send(services, readers, workers)
        finally:
            services.environ.clear()
            services.environ.update(saved)
        rows.append((mode, readers, raw, result.messages_per_second))
    return rows


if __name__ == "__main__":
    main()
