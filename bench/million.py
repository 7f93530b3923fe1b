"""`make bench-million`: one digest to a million readers on PostgreSQL, the stack as shipped.

python -m bench.million                       # 10,000, 100,000 and 1,000,000 readers
python -m bench.million --readers 1000000

For each size, from a fresh database: the readers imported through
`mailer import-subscribers` (files of 200,000 rows, under its 20 MB limit), ten
articles through the API, the digest triggered and polled through the API. Prints
the import time, how long the trigger took to answer, materialization (the rows
made by a worker while the first batches already send), the first mail after the
trigger, the total, and the worker's peak memory; checks that the ledger shows each
reader sent exactly once. Appends to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.run import RESULTS
from bench.services import ensure_tools
from bench.shipped import ShippedStack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    ensure_tools()
    shipped = ShippedStack()
    if not shipped.database_url.startswith("postgresql"):
        raise SystemExit("bench-million runs on PostgreSQL (MAILER_BENCH_DATABASE_URL)")
    rows = []
    try:
        for readers in args.readers:
            shipped.start()
            imported = shipped.import_readers(readers)
            shipped.push_articles()
            try:
                result = shipped.send(readers)
            finally:
                shipped.stop()
            rows.append(
                {
                    "readers": readers,
                    "import_seconds": round(imported, 1),
                    "trigger_answer_seconds": round(result.trigger_seconds, 3),
                    "materialize_seconds": round(result.materialize_seconds, 1),
                    "first_mail_seconds": round(result.first_mail_seconds, 2),
                    "total_seconds": round(result.total_seconds, 1),
                    "messages_per_second": round(result.messages_per_second),
                    "worker_peak_rss_mb": result.worker_rss_mb,
                }
            )
            print_rows(rows)
    finally:
        shipped.close()
    with RESULTS.open("a") as out:
        record = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "million": rows}
        out.write(json.dumps(record) + "\n")


def print_rows(rows: list[dict]) -> None:
    print()
    print(
        f"{'readers':>9} {'import s':>9} {'answer s':>9} {'materialize s':>14} "
        f"{'first mail s':>13} {'total s':>8} {'msg/s':>6}  worker peak RSS MB"
    )
    for r in rows:
        print(
            f"{r['readers']:>9} {r['import_seconds']:>9.1f} {r['trigger_answer_seconds']:>9.2f} "
            f"{r['materialize_seconds']:>14.1f} {r['first_mail_seconds']:>13.2f} "
            f"{r['total_seconds']:>8.1f} {r['messages_per_second']:>6}  {r['worker_peak_rss_mb']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
