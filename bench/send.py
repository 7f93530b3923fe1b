"""Send throughput, trigger-to-first-mail, materialization and worker memory.

The real path: POST /api/digests -> Celery workers -> SMTP sink, with the full
delivery ledger. The baseline, measured in the same run against the same sink:
pre-built message bytes sent by plain smtplib over one persistent connection
per process, with as many processes as mailer has workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select, text

from bench.services import Services, worker_rss_peaks
from mailer import digests, emails
from mailer.api_tokens import create_api_token
from mailer.db import db
from mailer.emails.message import PreparedMessage, newsletter_headers
from mailer.models import Article, Delivery, DeliveryStatus, Digest, utcnow

ARTICLES = 10
SUMMARY = (
    "The council voted on Tuesday to approve a network of protected cycle lanes "
    "across the city centre, after two years of consultation. "
) * 8


def seed(services: Services, readers: int) -> None:
    """Readers inserted set-based, and ten articles of about 2 KB each."""
    app = services.app
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            sql = (
                "INSERT INTO subscribers (email, email_key, status, created_at, confirmed_at, "
                "link_key, legacy_links) "
                "SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', 'active', "
                "now(), now(), md5(random()::text), false FROM generate_series(1, :n) AS n"
            )
        else:
            sql = (
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) "
                "INSERT INTO subscribers (email, email_key, status, created_at, confirmed_at, "
                "link_key, legacy_links) "
                "SELECT 'r' || n || '@example.org', 'r' || n || '@example.org', 'active', "
                "datetime('now'), datetime('now'), lower(hex(randomblob(12))), 0 FROM seq"
            )
        with db.engine.begin() as connection:
            connection.execute(text(sql), {"n": readers})
        for n in range(ARTICLES):
            db.session.add(
                Article(
                    title=f"Story {n}: council approves the new cycle lanes",
                    url=f"https://news.example.org/story/{n}",
                    summary=SUMMARY,
                    author="Newsroom",
                    source="bench",
                    ready_at=utcnow(),
                )
            )
        db.session.commit()


@dataclass
class SendResult:
    readers: int
    messages_per_second: float
    materialize_seconds: float
    first_mail_seconds: float
    total_seconds: float
    html_bytes: int
    worker_rss_mb: list[float]


def sample_message(services: Services) -> bytes:
    """One reader's message of the digest about to be sent, for the baseline."""
    with services.app.app_context():
        settings = services.app.config["MAILER"]
        prepared = PreparedMessage(
            settings,
            digests.preview(),
            slots=(emails.UNSUBSCRIBE_SLOT,),
            headers=newsletter_headers(settings),
        )
        link = "https://news.example.org/unsubscribe/MTIzNDU.AbCdEfGhIjKlMnOpQrStUvWxYz0"
        return prepared.render(
            headers={
                "To": "raw@example.org",
                "Message-ID": "<raw@example.org>",
                "List-Unsubscribe": f"<{link}>",
            },
            values=(link,),
        )


def mailer_send(services: Services, readers: int, workers: int) -> SendResult:
    """Seeded readers and articles already in place: trigger, wait, verify the ledger."""
    app = services.app
    worker = services.start_worker(concurrency=workers)
    try:
        with app.app_context():
            token = create_api_token(f"bench-{time.time_ns()}")
        client = app.test_client()
        began = time.perf_counter()
        started_at = utcnow()
        response = client.post("/api/digests", headers={"Authorization": f"Bearer {token}"})
        materialized = time.perf_counter() - began
        assert response.status_code == 202, response.get_data(as_text=True)
        digest_id = response.get_json()["id"]
        while True:
            with app.app_context():
                status = db.session.scalar(select(Digest.status).where(Digest.id == digest_id))
            if status.value != "sending":
                break
            time.sleep(0.2)  # polling a running benchmark, not synchronizing a test
        total = time.perf_counter() - began
        peaks = worker_rss_peaks(worker)
    finally:
        services.stop_worker(worker)
    with app.app_context():
        digest = db.session.get(Digest, digest_id)
        counts = dict(
            db.session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.digest_id == digest_id)
                .group_by(Delivery.status)
            ).all()
        )
        first = db.session.scalar(
            select(func.min(Delivery.sent_at)).where(Delivery.digest_id == digest_id)
        )
        html_bytes = len(digest.html_body.encode())
    sent = counts.get(DeliveryStatus.SENT, 0)
    # The benchmark checks its own result: every reader got exactly one message.
    if sent != readers or len(counts) != 1:
        raise SystemExit(f"ledger mismatch: {counts} for {readers} readers")
    return SendResult(
        readers=readers,
        messages_per_second=readers / total,
        materialize_seconds=materialized,
        first_mail_seconds=(first - started_at).total_seconds(),
        total_seconds=total,
        html_bytes=html_bytes,
        worker_rss_mb=peaks,
    )
