"""The send journal: a write-ahead, in Redis, of which row of a claim is on the wire.

The ledger reaches SQL once a second; the journal covers the time in between.
Should the worker die, recovery reads it: rows it lists as sent are sent, the
one row on the wire is in doubt, the rest were never tried.

Only redis-py's public API, and one command a message: the claim's list gets the row
going on the wire (`wire:<id>`) and, in the same RPUSH, the row sent before it (`<id>`).
The command is answered before the message it notes can be accepted: the send loop
makes the note while the relay answers the envelope (`SMTPConnection.send(...,
before_body=...)`), and a relay cannot take a message before its body.
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

JOURNAL_TTL = 7 * 86400
WIRE = b"wire:"  # marks the entry of a row on the wire; a bare id is a row sent


class Journal:
    """Write-ahead of one claim's sends in Redis: which row is on the wire, which went."""

    def __init__(self, client: redis.Redis, claim_id: int) -> None:
        self.client = client
        self.prefix = f"mailer:claim:{claim_id}"
        self._open = f"{self.prefix}:open"
        self._log = f"{self.prefix}:sent"
        # Where the journal kept the row on the wire before it became one list: still
        # read, so a claim journaled by a worker of the previous release that died
        # during an upgrade is settled as exactly as before.
        self._old_inflight = f"{self.prefix}:inflight"
        self.working = True
        self._writer: redis.Redis | None = None

    def _fail(self, exc: Exception) -> None:
        # Sending goes on; should this worker die now, its rows are reported unknown.
        log.warning("send journal unavailable (%s); continuing without it", exc)
        self.working = False
        self.close()

    def _push(self, *entries: bytes | int) -> None:
        if not self.working:
            return
        try:
            if self._writer is None:
                # One connection of the pool held for the claim's notes (public API:
                # single_connection_client): taking one from the pool and giving it
                # back for each command cost a third of the note's own time. Made on
                # first use, so a Redis that is down fails here, not in the constructor.
                self._writer = redis.Redis(
                    connection_pool=self.client.connection_pool, single_connection_client=True
                )
            self._writer.rpush(self._log, *entries)
        except redis.RedisError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Gives the held connection back to the pool (the journal's keys stay)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def open(self) -> None:
        if not self.working:
            return
        try:
            # Not a transaction: one write and one read, and the replies say Redis has them.
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self._open, 1, JOURNAL_TTL)
            pipe.rpush(self._log, 0)  # a marker entry, so the list can carry its expiry
            pipe.expire(self._log, JOURNAL_TTL)
            pipe.execute()
        except redis.RedisError as exc:
            self._fail(exc)

    def attempting(self, delivery_id: int, *, sent_before: int | None = None) -> None:
        """Notes the row going on the wire, and the one that went before it: one command.

        So the row sent last is recorded only when the next one starts, or at close;
        a worker dying in between leaves that one row in doubt, never more.
        """
        wire = WIRE + str(delivery_id).encode()
        if sent_before is None:
            self._push(wire)
        else:
            self._push(sent_before, wire)

    def sent(self, delivery_id: int) -> None:
        self._push(delivery_id)

    def read(self) -> tuple[bool, set[int], int | None]:
        """(journal exists, ids sent, id on the wire). Raises redis.RedisError."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self._open)
        pipe.lrange(self._log, 0, -1)
        pipe.get(self._old_inflight)
        opened, entries, old_inflight = pipe.execute()
        sent: set[int] = set()
        inflight = int(old_inflight) if old_inflight else None
        for entry in entries:
            if entry.startswith(WIRE):
                inflight = int(entry[len(WIRE) :])
            else:
                sent.add(int(entry))
        return bool(opened), sent, inflight

    def discard(self) -> None:
        if not self.working:
            return
        try:
            self.client.delete(self._open, self._log, self._old_inflight)
        except redis.RedisError as exc:
            self._fail(exc)
