"""Making a digest's delivery rows in a worker, range by range, while the first batches send.

The trigger (the API, the console, the CLI, the schedule) only makes the digest and
answers: with a million readers, making every row takes most of a minute. A worker
makes them a range of subscriber ids at a time, each range in its own transaction,
and fans out the batch tasks for each range as soon as it is committed. A
materializer that dies leaves the digest's watermark where it stopped; the
reconciler starts another, which goes on from there.
"""

from __future__ import annotations

import logging

from mailer.delivery.rows import finish_if_done, materialize_next
from mailer.delivery.sender import enqueue_batches
from mailer.models import Delivery
from mailer.platform import jobs
from mailer.platform.db import db

log = logging.getLogger(__name__)

# Claims take the lowest ids of a status by walking an index, but only if the planner
# knows the digest has many rows: with the statistics of before (autovacuum comes late,
# or is off), it sorted every pending row for each batch of 500, 0.3 s a claim at a
# million. So the table is analyzed as the rows grow: at 20,000, 80,000, 320,000...
ANALYZE_FIRST_AT = 20_000


def enqueue_materialize(digest_id: int) -> None:
    jobs.enqueue(jobs.MATERIALIZE, digest_id)


def materialize_digest(digest_id: int) -> int:
    """Makes every row still to make; returns how many this call made."""
    made, analyze_at = 0, ANALYZE_FIRST_AT
    while True:
        chunk = materialize_next(digest_id)
        if chunk.rows:
            enqueue_batches(digest_id, chunk.rows, first_id=chunk.first_id)
            made += chunk.rows
        if made >= analyze_at:
            db.analyze(Delivery)
            analyze_at = made * 4
        if chunk.done:
            break
    finish_if_done(digest_id)  # a digest whose readers all left meanwhile ends here
    log.info("digest %s: %d delivery rows made", digest_id, made)
    return made
