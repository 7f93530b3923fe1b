"""The console's History and dashboard with many big finished digests (issue #17).

Readers come in through `mailer import-subscribers`; finished digests and their delivery
rows are made directly in PostgreSQL (a digest of 100,000 readers takes minutes to send,
and only the rows' count matters here). An editor logs in over HTTP to the Procfile's web,
and each page is fetched again and again: the median and the slowest time per page, with
1 digest against many of the same size.
"""

from __future__ import annotations

import http.cookiejar
import re
import statistics
import time
import urllib.parse
import urllib.request

import psycopg

from bench.shipped import ShippedStack

PAGES = {"history": "/editor/digests", "dashboard": "/editor/"}
FETCHES = 30
EDITOR, PASSWORD = "bench-editor@example.org", "a long bench password"


def pages_table(shipped: ShippedStack, digest_counts: list[int], readers: int) -> list[dict]:
    rows = []
    for count in digest_counts:
        shipped.start(public=False)
        try:
            shipped.import_readers(readers)
            made = make_finished_digests(shipped.database_url, count)
            opener = logged_in(shipped)
            for name, path in PAGES.items():
                times = fetch_times(opener, base_url(shipped) + path)
                rows.append(
                    {
                        "page": name,
                        "digests": count,
                        "readers": readers,
                        "delivery_rows": made,
                        "median_ms": round(statistics.median(times) * 1000, 1),
                        "slowest_ms": round(max(times) * 1000, 1),
                    }
                )
        finally:
            shipped.stop()
    return rows


def base_url(shipped: ShippedStack) -> str:
    assert shipped.stack is not None
    return shipped.stack.base_url


def make_finished_digests(database_url: str, count: int) -> int:
    """`count` finished daily digests, each with a sent row for every reader."""
    url = re.sub(r"^postgresql\+\w+://", "postgresql://", database_url)
    with psycopg.connect(url, autocommit=True) as connection:
        for n in range(count):
            digest_id = connection.execute(
                "INSERT INTO digests (status, frequency, trigger, article_watermark, subject,"
                " subject_given, text_body, html_body, total, materialized_up_to,"
                " materialized_at, created_at, finished_at, hidden_from_archive, nothing_new,"
                " sent_count, failed_count, unknown_count, skipped_count)"
                " SELECT 'sent', 'daily', 'bench', 0, %s, false, 'text', '<p>html</p>',"
                " count(*), max(id), now(), now(), now(), false, 0, count(*), 0, 0, 0"
                " FROM subscribers RETURNING id",
                (f"Bench digest {n}",),
            ).fetchone()[0]
            connection.execute(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, attempts, sent_at,"
                " gave_up) SELECT %s, id, 'sent', 1, now(), false FROM subscribers",
                (digest_id,),
            )
        connection.execute("ANALYZE")
        return connection.execute("SELECT count(*) FROM deliveries").fetchone()[0]


def logged_in(shipped: ShippedStack) -> urllib.request.OpenerDirector:
    assert shipped.stack is not None
    shipped.stack.mailer("create-editor", EDITOR, "--password-stdin", stdin=PASSWORD + "\n")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = opener.open(base_url(shipped) + "/editor/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf, "no CSRF token on the login page"
    body = urllib.parse.urlencode(
        {"csrf_token": csrf[1], "email": EDITOR, "password": PASSWORD}
    ).encode()
    page = opener.open(base_url(shipped) + "/editor/login", data=body, timeout=30)
    assert "/editor/login" not in page.geturl(), "the bench editor could not log in"
    return opener


def fetch_times(opener: urllib.request.OpenerDirector, url: str) -> list[float]:
    opener.open(url, timeout=60).read()  # the first fetch warms the web's caches
    times = []
    for _ in range(FETCHES):
        began = time.perf_counter()
        response = opener.open(url, timeout=60)
        response.read()
        times.append(time.perf_counter() - began)
        assert response.status == 200
    return times


def print_pages(rows: list[dict]) -> None:
    print("\nConsole pages with finished digests (Procfile web, PostgreSQL)")
    print(f"{'page':<10} {'digests':>8} {'rows':>12} {'median ms':>10} {'slowest ms':>11}")
    for row in rows:
        print(
            f"{row['page']:<10} {row['digests']:>8} {row['delivery_rows']:>12,}"
            f" {row['median_ms']:>10} {row['slowest_ms']:>11}"
        )
    by_page: dict[str, dict[int, float]] = {}
    for row in rows:
        by_page.setdefault(row["page"], {})[row["digests"]] = row["median_ms"]
    for page, medians in by_page.items():
        if len(medians) > 1:
            low, high = min(medians), max(medians)
            print(f"{page}: {high} digests / {low} digest = {medians[high] / medians[low]:.2f}x")


def main() -> None:
    """`python -m bench.pages --digests 1 100 --readers 100000`: this table alone."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--digests", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--readers", type=int, default=100_000)
    args = parser.parse_args()
    shipped = ShippedStack(sink="python")  # nothing is sent: any sink will do
    try:
        print_pages(pages_table(shipped, args.digests, args.readers))
    finally:
        shipped.close()


if __name__ == "__main__":
    main()
