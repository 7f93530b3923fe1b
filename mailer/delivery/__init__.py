"""The delivery engine: the one home of a delivery row (one digest to one reader) and its claims.

Every change of a row's status is made by exactly one function:

                   materialize_chunk()
     (digest made) ─────────────────► PENDING ◄──────────── requeue_gave_up() ── FAILED (gave up)
                                       │   ▲
                         claim_rows()  │   │ Ledger.flush(): halted by a pause
                                       ▼   │ recover_claim(): never reached
     RETRYING (due) ────────────────► CLAIMED ───────────────────────────────► SENT
            ▲         claim_rows()     │  │  Ledger.flush(): accepted (250)
            │                          │  │  recover_claim(): the journal lists it
            │                          │  │
            └──────────────────────────┘  ├──────────────────────────────────► FAILED
              Ledger.flush(): a 4xx or a  │  Ledger.flush(): 5xx, or 4xx on the last attempt
              lost connection, or never   │
              attempted (relay down)      ├──────────────────────────────────► UNKNOWN
                                          │  recover_claim(): on the wire when the worker
                                          │  died, or its journal was lost; never resent
                                          │
                                          └──────────────────────────────────► SKIPPED
                                             claim_rows(): the reader is no longer active
                                             Ledger.flush(): halted by a cancel
     PENDING, RETRYING ── skip_unsent(): the editor cancelled ──────────────► SKIPPED

Transitions and the function that makes each:

- (none) -> pending: `rows.materialize_chunk`, run by `materializer.materialize_digest` in a
  worker after a digest is made: one row per active reader, a range of ids at a time.
- pending, retrying (due) -> claimed: `claims.claim_rows`, a batch task taking rows.
- claimed -> skipped: `claims.claim_rows`, the reader left after the digest was made.
- claimed -> sent, failed, retrying: `ledger.Ledger.flush`, as the relay answered.
- claimed -> retrying: `ledger.Ledger.flush`, never attempted (the relay was down).
- claimed -> pending, skipped: `ledger.Ledger.flush`, the batch halted (pause, cancel).
- claimed -> sent, unknown, pending: `recovery.recover_claim`, the worker died.
- pending, retrying -> skipped: `rows.skip_unsent`, the editor cancelled.
- failed (gave up) -> pending: `rows.requeue_gave_up`, the editor retries.

A row is *owed* (`rows.OWED`) while pending, claimed or retrying; a digest is
done (`rows.finish_if_done`) when none of its rows is owed. A row goes on the
wire at most once: the journal (`journal.Journal`) notes it before it is sent,
and a row whose fate is unknown after a crash is reported, never resent.
"""

from mailer.delivery.materializer import enqueue_materialize, materialize_digest
from mailer.delivery.progress import digest_progress, digests_progress, live_status_counts
from mailer.delivery.recovery import reconcile_digests, recover_stale_claims
from mailer.delivery.rows import (
    CANCELLED_REPLY,
    OWED,
    count_owed,
    finish_if_done,
    live_claims,
    requeue_gave_up,
    skip_unsent,
    status_counts,
)
from mailer.delivery.sender import BatchResult, enqueue_batches, schedule_retry, send_batch

__all__ = [
    "CANCELLED_REPLY",
    "OWED",
    "BatchResult",
    "count_owed",
    "digest_progress",
    "digests_progress",
    "enqueue_batches",
    "enqueue_materialize",
    "finish_if_done",
    "live_claims",
    "live_status_counts",
    "materialize_digest",
    "reconcile_digests",
    "recover_stale_claims",
    "requeue_gave_up",
    "schedule_retry",
    "send_batch",
    "skip_unsent",
    "status_counts",
]
