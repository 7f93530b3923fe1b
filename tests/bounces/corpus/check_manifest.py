"""Check the corpus manifest: every row's file exists, every value is one of the allowed ones,
and print the counts per reason, kind, MTA and source.

Run from anywhere: python tests/bounces/corpus/check_manifest.py
It exits 1 when a row is wrong. It imports nothing of mailer's.

Sisimai's messages are not in this repository (see README.md): with MAILER_SISIMAI_DIR set
to a checkout's `maildir/bsd/` they are read from there; else their rows are counted apart.
"""

import csv
import os
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REASONS = (
    "user_unknown",
    "host_unknown",
    "moved",
    "mailbox_full",
    "disabled",
    "expired",
    "network",
    "system",
    "rate_limited",
    "blocked",
    "spam",
    "auth",
    "policy",
    "auto_reply",
    "delivered",
    "complaint",
    "unknown",
)
HARD = {"user_unknown", "host_unknown", "moved"}
KINDS = {"bounce", "complaint", "auto_reply", "delivered", "delayed"}
COLUMNS = ["file", "source", "mta", "kind", "expected_reason", "hard", "status", "note"]
MAX_BYTES = 200_000


def where_is(row: dict) -> Path | None:
    """A row's message: in this folder, or Sisimai's in MAILER_SISIMAI_DIR (None: absent)."""
    if row["source"] != "sisimai":
        return HERE / row["file"]
    outside = os.environ.get("MAILER_SISIMAI_DIR")
    if not outside:
        return None
    return Path(outside) / row["file"].removeprefix("sisimai/")


def main() -> int:
    errors = []
    with open(HERE / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            errors.append(f"columns are {reader.fieldnames}, expected {COLUMNS}")
        rows = list(reader)
    seen = set()
    absent = 0
    for n, row in enumerate(rows, start=2):
        where = f"manifest.csv:{n} {row['file']}"
        path = where_is(row)
        if path is None:
            absent += 1
            continue
        if row["file"] in seen:
            errors.append(f"{where}: listed twice")
        seen.add(row["file"])
        if not path.is_file():
            errors.append(f"{where}: no such file")
        elif path.stat().st_size > MAX_BYTES:
            errors.append(f"{where}: over {MAX_BYTES} bytes")
        in_source = row["file"].startswith(row["source"] + "/")
        licensed = (HERE / row["source"] / "LICENSE").is_file() or row["source"] == "sisimai"
        if not in_source or not licensed:
            errors.append(f"{where}: source {row['source']!r} has no LICENSE beside its messages")
        if row["expected_reason"] not in REASONS:
            errors.append(f"{where}: reason {row['expected_reason']!r} is not one of the list")
        if row["kind"] not in KINDS:
            errors.append(f"{where}: kind {row['kind']!r} is not one of {sorted(KINDS)}")
        if row["hard"] != str(row["expected_reason"] in HARD).lower():
            errors.append(f"{where}: hard={row['hard']} does not follow from the reason")
        if not row["mta"]:
            errors.append(f"{where}: no mta")
    on_disk = {
        str(p.relative_to(HERE)) for p in HERE.glob("*/*") if p.name not in ("LICENSE", "SOURCE.md")
    }
    for extra in sorted(on_disk - seen):
        errors.append(f"{extra}: on disk but not in the manifest")

    def show(title: str, counter: Counter) -> None:
        print(f"{title} ({len(counter)} distinct)")
        for key, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {key:<18} {count}")

    reasons = Counter(r["expected_reason"] for r in rows)
    print(f"{len(rows)} messages, {sum(1 for r in rows if r['hard'] == 'true')} hard")
    print(f"by reason ({len(reasons)} distinct)")
    for reason in REASONS:
        print(f"  {reason:<18} {reasons.get(reason, 0)}")
    show("by kind", Counter(r["kind"] for r in rows))
    show("by source", Counter(r["source"] for r in rows))
    show("by mta", Counter(r["mta"] for r in rows))
    if absent:
        print(f"{absent} rows' messages are not here (Sisimai's: set MAILER_SISIMAI_DIR)")
    for e in errors:
        print("ERROR", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
