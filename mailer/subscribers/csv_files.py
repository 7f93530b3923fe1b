"""Subscriber CSV import: check the file (a preview of what changes), then apply it.

Columns `email,name,status,consented_at,sections,frequency`; extra columns are ignored.
`sections` lists slugs (separated by spaces, commas or semicolons; empty: every
section) and `frequency` is daily (the default) or weekly. `active` rows
with `consented_at` are imported confirmed; `pending` rows and `active` rows
without it are imported pending and sent a confirmation; `unsubscribed` rows are
recorded and never mailed. An import never brings back a reader who unsubscribed
or was erased, and never makes an active reader pending again.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import insert, select, update

from mailer import sections
from mailer.mail.addresses import clean_name, normalize_address
from mailer.models import (
    Frequency,
    ImportStatus,
    Subscriber,
    SubscriberImport,
    SubscriberStatus,
    utcnow,
)
from mailer.platform import jobs
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput, NotFound
from mailer.subscribers import records as readers

MAX_IMPORT_BYTES = 20 * 1024 * 1024
CHUNK = 1000
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Row:
    line: int
    email: str
    key: str
    name: str | None
    status: SubscriberStatus
    consented_at: datetime | None
    sections: str | None = None  # a sections key (mailer.sections); None: every section
    frequency: Frequency = Frequency.DAILY


def decode_upload(raw: bytes) -> str:
    """The file as text, or a clear InvalidInput for what is not a CSV we can read."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB.")
    if b"\0" in raw[:65536]:
        raise InvalidInput("That is not a CSV file: it contains binary data.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("That is not a UTF-8 text file. Save the CSV as UTF-8.") from None
    header_columns(text)
    return text


def header_columns(text: str) -> list[str]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [c.strip().lower() for c in next(reader, [])]
    except csv.Error as exc:
        raise InvalidInput(f"The first line is not a CSV header ({exc}).") from None
    if "email" not in header:
        shown = ", ".join(h for h in header if h) or "none"
        raise InvalidInput(f"The file has no 'email' column. Its columns are: {shown}.")
    return header


def _parse_time(value: str) -> datetime:
    """Raises ValueError for what is not a time in UTC's range (0001-01-01T00:00+14:00 is not)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(value) from None


def _records(reader: csv.DictReader) -> Iterator[tuple[int, dict[str, str] | None]]:
    """(line, record) per row; record None for a row csv cannot read (a field too long)."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield reader.line_num, None
            continue
        yield reader.line_num, record


def parse_rows(text: str) -> tuple[list[Row], list[tuple[int, str]], int]:
    """Valid rows (duplicates merged, first one wins), errors by line, duplicates count."""
    header_columns(text)  # a clear error for a file without a readable header
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
    rows: dict[str, Row] = {}
    errors: list[tuple[int, str]] = []
    duplicates = 0
    for line, record in _records(reader):
        if record is None:
            errors.append((line, f"a field is longer than {csv.field_size_limit()} characters"))
            continue
        try:
            address = normalize_address(
                readers.from_spreadsheet(record.get("email") or ""), check_deliverability=False
            )
            name = clean_name(readers.from_spreadsheet(record.get("name") or "") or None)
            raw_status = (record.get("status") or "pending").strip().lower()
            if raw_status not in {s.value for s in SubscriberStatus}:
                raise InvalidInput(
                    f"status must be active, pending, unsubscribed or bounced, not {raw_status!r}"
                )
            consented = (record.get("consented_at") or "").strip()
            consented_at = _parse_time(consented) if consented else None
            choice = _choice(record)
        except InvalidInput as exc:
            errors.append((line, exc.message))
            continue
        except ValueError:
            errors.append((line, "consented_at must be an ISO 8601 date and time"))
            continue
        if address.key in rows:
            duplicates += 1
            continue
        status = SubscriberStatus(raw_status)
        if status == SubscriberStatus.ACTIVE and consented_at is None:
            status = SubscriberStatus.PENDING  # no recorded consent: they confirm first
        rows[address.key] = Row(
            line,
            address.email,
            address.key,
            name,
            status,
            consented_at,
            choice.sections,
            choice.frequency,
        )
    return list(rows.values()), errors, duplicates


def _choice(record: dict[str, str]) -> sections.Choice:
    """The row's sections and frequency; empty cells mean every section, daily."""
    slugs = (record.get("sections") or "").replace(",", " ").replace(";", " ").split()
    frequency = sections.parse_frequency((record.get("frequency") or "").strip().lower())
    # An export's retired sections come back as they were.
    key = sections.parse_sections(slugs, keep_retired=True) if slugs else None
    return sections.Choice(key, frequency)


def changes(counts: Counter[str] | dict[str, int]) -> int:
    """How many rows change a reader: new ones, and readers the file unsubscribes."""
    return sum(n for outcome, n in counts.items() if outcome in CHANGING or outcome[:4] == "new_")


CHANGING = {"unsubscribed_existing"}


def _outcome(row: Row, existing: SubscriberStatus | None, suppressed: bool) -> str:
    if suppressed:
        return "skipped_erased"
    if existing is None:
        return f"new_{row.status.value}"
    if row.status == SubscriberStatus.UNSUBSCRIBED and existing != SubscriberStatus.UNSUBSCRIBED:
        return "unsubscribed_existing"
    return "unchanged"


def _existing(keys: list[str]) -> dict[str, tuple[int, SubscriberStatus]]:
    found = db.session.execute(
        select(Subscriber.email_key, Subscriber.id, Subscriber.status).where(
            Subscriber.email_key.in_(keys)
        )
    )
    return {key: (sid, status) for key, sid, status in found}


def _chunks(rows: list[Row]) -> list[list[Row]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def store(filename: str, raw: bytes, requested_by: str, status: ImportStatus) -> int:
    """Keeps an uploaded file in SQL, where any worker can read it. Returns the import's id."""
    text = decode_upload(raw)
    with db.transaction():
        record = SubscriberImport(
            filename=filename[:255] or "upload.csv",
            content=text,
            status=status,
            requested_by=requested_by,
        )
        db.session.add(record)
        db.session.flush()
        return record.id


def upload(filename: str, raw: bytes, requested_by: str) -> int:
    """Stores the file and asks a worker to check it (large files take a while)."""
    import_id = store(filename, raw, requested_by, ImportStatus.CHECKING)
    jobs.enqueue(jobs.CHECK_IMPORT, import_id)
    return import_id


def check(import_id: int) -> dict:
    """Worker: what applying the file would change, without changing anything."""
    record = _get(import_id)
    try:
        rows, errors, duplicates = parse_rows(record.content)
    except InvalidInput as error:
        _save(import_id, status=ImportStatus.FAILED, summary={"error": error.message})
        return {"error": error.message}
    counts: Counter[str] = Counter()
    for chunk in _chunks(rows):
        keys = [r.key for r in chunk]
        existing, erased = _existing(keys), readers.suppressed(keys)
        for row in chunk:
            state = existing.get(row.key)
            counts[_outcome(row, state[1] if state else None, row.key in erased)] += 1
    summary = {
        "counts": dict(counts),
        "changes": changes(counts),  # what the confirm button counts: unchanged rows are not
        "invalid": len(errors),
        "duplicates": duplicates,
        "errors": errors[:MAX_ERRORS_SHOWN],
    }
    _save(import_id, status=ImportStatus.PREVIEWED, total_rows=len(rows), summary=summary)
    return summary


def start(import_id: int) -> None:
    """The editor confirmed the preview: a worker applies the file."""
    with db.transaction():
        changed = db.change(
            update(SubscriberImport)
            .where(
                SubscriberImport.id == import_id,
                SubscriberImport.status == ImportStatus.PREVIEWED,
            )
            .values(status=ImportStatus.RUNNING, processed_rows=0)
        )
    if not changed:
        raise InvalidInput("This import is not waiting for confirmation.")
    jobs.enqueue(jobs.APPLY_IMPORT, import_id)


def apply(import_id: int) -> dict:
    """Worker: applies the file chunk by chunk, reporting progress; safe to run again."""
    record = _get(import_id)
    rows, errors, duplicates = parse_rows(record.content)
    source = f"{readers.IMPORT_SOURCE}{record.filename}"[:100]
    counts: Counter[str] = Counter()
    for done, chunk in enumerate(_chunks(rows), start=1):
        counts += _apply_chunk(chunk, source)
        _save(import_id, processed_rows=min(done * CHUNK, len(rows)))
        if done & (done - 1) == 0 and done >= 2:  # after chunks 2, 4, 8, ...: sizes the
            db.analyze(Subscriber)  # planner sees, where autovacuum may come late or never
    summary = {
        "counts": dict(counts),
        "invalid": len(errors),
        "duplicates": duplicates,
        "errors": errors[:MAX_ERRORS_SHOWN],
    }
    _save(import_id, status=ImportStatus.DONE, summary=summary, finished_at=utcnow())
    return summary


def _apply_chunk(chunk: list[Row], source: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    now = utcnow()
    consent_text = current_app.config["MAILER"].consent_text
    with db.transaction():
        keys = [r.key for r in chunk]
        existing, erased = _existing(keys), readers.suppressed(keys)
        new, leaving = [], []
        for row in chunk:
            state = existing.get(row.key)
            outcome = _outcome(row, state[1] if state else None, row.key in erased)
            counts[outcome] += 1
            if outcome.startswith("new_"):
                new.append(_new_subscriber(row, source, consent_text, now))
            elif outcome == "unsubscribed_existing" and state is not None:
                leaving.append(state[0])
        if new:
            db.session.execute(insert(Subscriber), new)
        if leaving:
            db.change(
                update(Subscriber)
                .where(Subscriber.id.in_(leaving))
                .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now)
            )
        pending = [r["email_key"] for r in new if r["status"] == SubscriberStatus.PENDING]
        owed = list(
            db.session.scalars(select(Subscriber.id).where(Subscriber.email_key.in_(pending)))
        )
    for subscriber_id in owed:
        jobs.enqueue(jobs.SEND_CONFIRMATION, subscriber_id)
    return counts


def _new_subscriber(row: Row, source: str, consent_text: str, now: datetime) -> dict:
    confirmed = row.status == SubscriberStatus.ACTIVE
    return {
        "email": row.email,
        "email_key": row.key,
        "name": row.name,
        "status": row.status,
        "created_at": now,
        "consent_source": source,
        "consent_text": (
            f"Imported ({source}); consent given {row.consented_at.isoformat()}"
            if confirmed and row.consented_at
            else consent_text
        ),
        "confirmed_at": row.consented_at if confirmed else None,
        "unsubscribed_at": now if row.status == SubscriberStatus.UNSUBSCRIBED else None,
        "bounced_at": now if row.status == SubscriberStatus.BOUNCED else None,
        # Imported readers confirmed elsewhere, long ago: no welcome for them.
        "welcome_sent_at": now if confirmed else None,
        "confirmation_requested_at": now if row.status == SubscriberStatus.PENDING else None,
        "sections": row.sections,
        "frequency": row.frequency,
    }


def _get(import_id: int) -> SubscriberImport:
    record = db.session.get(SubscriberImport, import_id)
    if record is None:
        raise NotFound(f"There is no import {import_id}.")
    return record


def _save(import_id: int, *, summary: dict | None = None, **values: object) -> None:
    if summary is not None:
        values["summary"] = json.dumps(summary)
    with db.transaction():
        db.change(update(SubscriberImport).where(SubscriberImport.id == import_id).values(**values))


def state(import_id: int) -> dict:
    record = _get(import_id)
    return {
        "id": record.id,
        "filename": record.filename,
        "status": record.status.value,
        "total_rows": record.total_rows,
        "processed_rows": record.processed_rows,
        "summary": json.loads(record.summary) if record.summary else None,
    }
