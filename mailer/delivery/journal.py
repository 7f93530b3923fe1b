"""The send journal: a write-ahead, in Redis, of which row of a claim is on the wire.

The ledger reaches SQL once a second; the journal covers the time in between.
Should the worker die, recovery reads it: rows it lists as sent are sent, the
one row on the wire is in doubt, the rest were never tried.
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

JOURNAL_TTL = 7 * 86400
UNREAD_LIMIT = 256  # replies left unread at most (a few bytes each, in the socket's buffer)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Journal:
    """Write-ahead of one claim's sends in Redis: which row is on the wire, which went."""

    def __init__(self, client: redis.Redis, claim_id: int) -> None:
        self.client = client
        self.prefix = f"mailer:claim:{claim_id}"
        # The two commands sent per message, spelled out in RESP once: SET inflight <id>
        # EX <ttl>, and RPUSH sent <id>. Only the ids change.
        self._set_inflight_head = (
            b"*5\r\n" + _bulk(b"SET") + _bulk(f"{self.prefix}:inflight".encode())
        )
        self._set_tail = _bulk(b"EX") + _bulk(str(JOURNAL_TTL).encode())
        self._rpush_head = b"*3\r\n" + _bulk(b"RPUSH") + _bulk(f"{self.prefix}:sent".encode())
        self.working = True
        self._connection: redis.connection.Connection | None = None
        self._unread = 0  # replies of streamed writes not read yet

    def _stream(self, packed: bytes, count: int) -> None:
        """Writes commands without waiting for their replies, which are read in bulk later.

        Once written they reach Redis even if this process dies at once, which is
        all a write-ahead needs; waiting for each reply cost a round trip per message.
        """
        if not self.working:
            return
        try:
            if self._connection is None:
                self._connection = self.client.connection_pool.get_connection()
            if self._unread >= UNREAD_LIMIT:
                self._read_replies()
            self._connection.send_packed_command([packed], check_health=False)
            self._unread += count
        except redis.RedisError as exc:
            self._fail(exc)

    def _read_replies(self) -> None:
        assert self._connection is not None
        for _ in range(self._unread):
            reply = self._connection.read_response()
            if isinstance(reply, redis.ResponseError):
                raise reply
        self._unread = 0

    def settle(self) -> None:
        """Reads what the streamed writes answered and gives their connection back."""
        if self._connection is None:
            return
        try:
            self._read_replies()
        except redis.RedisError as exc:
            self._fail(exc)
            return
        self.client.connection_pool.release(self._connection)
        self._connection, self._unread = None, 0

    def _fail(self, exc: Exception) -> None:
        # Sending goes on; should this worker die now, its rows are reported unknown.
        log.warning("send journal unavailable (%s); continuing without it", exc)
        self.working = False
        if self._connection is not None:
            self._connection.disconnect()
            self.client.connection_pool.release(self._connection)
            self._connection, self._unread = None, 0

    def _run(self, *commands: tuple) -> None:
        self.settle()  # streamed writes first, so the journal stays in order
        if not self.working:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, *args in commands:
                getattr(pipe, name)(*args)
            pipe.execute()
        except redis.RedisError as exc:
            self._fail(exc)

    def open(self) -> None:
        sent = f"{self.prefix}:sent"
        self._run(
            ("set", f"{self.prefix}:open", 1, JOURNAL_TTL),
            ("rpush", sent, 0),  # a marker entry, so the list can carry its expiry
            ("expire", sent, JOURNAL_TTL),
        )

    def attempting(self, delivery_id: int, *, sent_before: int | None = None) -> None:
        """Notes the row going on the wire, and the one that went before it: one write.

        So the row sent last is recorded only when the next one starts, or at close;
        a worker dying in between leaves that one row in doubt, never more.
        """
        packed = self._set_inflight_head + _bulk(str(delivery_id).encode()) + self._set_tail
        if sent_before is None:
            self._stream(packed, 1)
        else:
            push = self._rpush_head + _bulk(str(sent_before).encode())
            self._stream(push + packed, 2)

    def sent(self, delivery_id: int) -> None:
        key = f"{self.prefix}:sent"
        self._run(("rpush", key, delivery_id), ("expire", key, JOURNAL_TTL))

    def read(self) -> tuple[bool, set[int], int | None]:
        """(journal exists, ids sent, id on the wire). Raises redis.RedisError."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(f"{self.prefix}:open")
        pipe.lrange(f"{self.prefix}:sent", 0, -1)
        pipe.get(f"{self.prefix}:inflight")
        opened, sent, inflight = pipe.execute()
        return bool(opened), {int(x) for x in sent}, int(inflight) if inflight else None

    def discard(self) -> None:
        self._run(
            ("delete", f"{self.prefix}:open", f"{self.prefix}:sent", f"{self.prefix}:inflight")
        )
