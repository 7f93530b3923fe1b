"""Segments (issue #13): one daily run to readers spread over many sets of sections.

Each row starts a fresh stack with eight sections and imports `daily` daily readers
spread evenly over `count` sets of sections, plus a quarter as many weekly readers
(interleaved with them, spread the same way) whom the daily run must not mail. The
row with one set is the baseline: every reader takes every section, so the run makes
one segment, as a list without sections does. Every other set holds four sections,
and the articles are pushed so that every reader's mail, in every row, has the same
ten articles' shape as the headline's (six front-page articles plus four of theirs):
only the number of segments changes from row to row, never the message size.

Each run is checked: exactly the daily readers mailed (the ledger, and no row for a
weekly reader), one segment per set with its ten articles, the readers spread evenly.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

from bench.shipped import ARTICLES, Chooser, ShippedStack

SECTIONS = ("politics", "world", "business", "sport", "culture", "science", "travel", "opinion")
SETTING = ",".join(f"{slug}:{slug.title()}" for slug in SECTIONS)  # MAILER_SECTIONS
SET_SIZE = 4
# Sets of four of eight sections: up to 70 segments whose mails all have as many articles.
MAX_SEGMENTS = comb(len(SECTIONS), SET_SIZE)
FRONT_PAGE = ARTICLES - SET_SIZE  # what every reader gets besides their sections' articles
WEEKLY_SHARE = 4  # one weekly reader per four daily ones


def section_sets(count: int) -> list[tuple[str, ...]]:
    """`count` distinct sets of sections; one set is every section (the empty cell)."""
    if count == 1:
        return [()]
    every = list(combinations(SECTIONS, SET_SIZE))
    # Spread over the 70, so that the sets of a small count do not all share "politics".
    return [every[i * len(every) // count] for i in range(count)]


def article_sections(count: int) -> list[str | None]:
    """Where each pushed article is filed (None: front page). With one set its readers
    take every section, so only SET_SIZE sections get an article, and each row's mail
    has ARTICLES articles; with more sets every section has one."""
    filed = SECTIONS[:SET_SIZE] if count == 1 else SECTIONS
    return [None] * FRONT_PAGE + list(filed)


def chooser(sets: list[tuple[str, ...]], daily: int, weekly: int) -> Chooser:
    """Reader n's cells: `weekly` of the readers weekly, spread evenly among the daily
    ones (as a real list's are, so the daily run's ranges of ids hold both), and the
    readers of each frequency given the sets in turn."""
    total = daily + weekly

    def choose(n: int) -> tuple[str, str]:
        weekly_before = (n - 1) * weekly // total
        is_weekly = n * weekly // total > weekly_before
        index = weekly_before if is_weekly else n - 1 - weekly_before
        return " ".join(sets[index % len(sets)]), "weekly" if is_weekly else "daily"

    return choose


def segments_table(shipped: ShippedStack, counts: list[int], daily: int) -> list[dict]:
    rows = [segment_row(shipped, count, daily) for count in counts]
    single = next((r for r in rows if r["segments"] == 1), None)
    for r in rows:
        r["ratio_to_single"] = (
            round(r["messages_per_second"] / single["messages_per_second"], 3) if single else None
        )
    return rows


def segment_row(shipped: ShippedStack, count: int, daily: int) -> dict:
    weekly = daily // WEEKLY_SHARE
    sets = section_sets(count)
    shipped.start({"MAILER_SECTIONS": SETTING})
    try:
        imported = shipped.import_readers(daily + weekly, chooser(sets, daily, weekly))
        shipped.push_articles(article_sections(count))
        result = shipped.send(daily, frequency="daily")  # checks the ledger: `daily` sent
        made = check_run(shipped, result.digest_id, sets, weekly)
    finally:
        shipped.stop()
    return {
        "segments": count,
        "daily_readers": daily,
        "weekly_readers": weekly,
        "import_seconds": round(imported, 2),
        "messages_per_second": round(result.messages_per_second),
        "render_seconds": round(made["render_seconds"], 3),
        "segments_made": made["segments"],
        "materialize_seconds": round(result.materialize_seconds, 3),
        "first_mail_seconds": round(result.first_mail_seconds, 3),
        "total_seconds": round(result.total_seconds, 2),
        "body_bytes": made["body_bytes"],
        "worker_peak_rss_mb": result.worker_rss_mb,
    }


def check_run(
    shipped: ShippedStack, digest_id: int, sets: list[tuple[str, ...]], weekly: int
) -> dict:
    """Fails loudly unless the daily run went to the daily readers only, one segment per
    set, each with ARTICLES articles. Returns the segments' figures."""
    _check_weekly_unmailed(shipped, digest_id, weekly)
    segments = shipped.sql(
        "SELECT id, sections_key, articles, render_seconds, "
        "length(text_body) + length(html_body) FROM digest_segments WHERE digest_id = :id",
        {"id": digest_id},
        rows=True,
    )
    expected = {",".join(sorted(s)) if s else "*" for s in sets}
    keys = {key for _, key, _, _, _ in segments}
    if keys != expected or any(articles != ARTICLES for _, _, articles, _, _ in segments):
        shown = sorted((key, articles) for _, key, articles, _, _ in segments)
        raise SystemExit(f"segments {shown}, not {sorted(expected)} with {ARTICLES} each")
    readers = dict(
        shipped.sql(
            "SELECT segment_id, count(*) FROM deliveries WHERE digest_id = :id GROUP BY segment_id",
            {"id": digest_id},
            rows=True,
        )
    )
    if len(readers) != len(sets) or max(readers.values()) - min(readers.values()) > 1:
        raise SystemExit(f"readers per segment not spread evenly: {readers}")
    sizes = {sid: size for sid, _, _, _, size in segments}
    body = sum(sizes[sid] * n for sid, n in readers.items()) / sum(readers.values())
    return {
        "segments": len(segments),
        "render_seconds": sum(seconds for _, _, _, seconds, _ in segments),
        "body_bytes": round(body),  # text and HTML bodies as rendered, averaged over readers
    }


def _check_weekly_unmailed(shipped: ShippedStack, digest_id: int, weekly: int) -> None:
    imported = shipped.sql(
        "SELECT count(*) FROM subscribers WHERE frequency = 'weekly' AND status = 'active'"
    )
    mailed = shipped.sql(
        "SELECT count(*) FROM deliveries AS d JOIN subscribers AS s ON s.id = d.subscriber_id "
        "WHERE d.digest_id = :id AND s.frequency <> 'daily'",
        {"id": digest_id},
    )
    nothing_new = shipped.sql("SELECT nothing_new FROM digests WHERE id = :id", {"id": digest_id})
    if imported != weekly or mailed or nothing_new:
        raise SystemExit(
            f"weekly readers: {imported} imported of {weekly}, {mailed} mailed by the daily "
            f"run; {nothing_new} daily readers with nothing new"
        )


def print_segments(rows: list[dict]) -> None:
    print()
    print(
        f"{'segments':>8} {'daily':>8} {'weekly':>7} {'msg/s':>6} {'vs 1':>5} {'render s':>9} "
        f"{'made':>5} {'materialize s':>14} {'first mail s':>13} {'total s':>8} "
        f"{'body KB':>8} worker peak RSS MB"
    )
    for r in rows:
        versus = f"{r['ratio_to_single']:.2f}" if r["ratio_to_single"] else "-"
        print(
            f"{r['segments']:>8} {r['daily_readers']:>8} {r['weekly_readers']:>7} "
            f"{r['messages_per_second']:>6} {versus:>5} {r['render_seconds']:>9.3f} "
            f"{r['segments_made']:>5} {r['materialize_seconds']:>14.2f} "
            f"{r['first_mail_seconds']:>13.2f} {r['total_seconds']:>8.1f} "
            f"{r['body_bytes'] / 1024:>8.1f} {r['worker_peak_rss_mb']}"
        )
