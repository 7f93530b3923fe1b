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


class Journal:
    """Write-ahead of one claim's sends in Redis: which row is on the wire, which went."""

    def __init__(self, client: redis.Redis, claim_id: int) -> None:
        self.client = client
        self.prefix = f"mailer:claim:{claim_id}"
        self.working = True
        self._connection: redis.connection.Connection | None = None
        self._unread = 0  # replies of streamed writes not read yet

    def _stream(self, *commands: tuple) -> None:
        """Writes commands without waiting for their replies; they are read before the next.

        Once written they reach Redis even if this process dies at once, which is
        all a write-ahead needs; waiting for each reply cost a round trip per message.
        """
        if not self.working:
            return
        try:
            if self._connection is None:
                self._connection = self.client.connection_pool.get_connection()
            for _ in range(self._unread):
                self._connection.read_response()
            self._connection.send_packed_command(self._connection.pack_commands(commands))
            self._unread = len(commands)
        except redis.RedisError as exc:
            self._fail(exc)

    def settle(self) -> None:
        """Reads what the streamed writes answered and gives their connection back."""
        if self._connection is None:
            return
        try:
            for _ in range(self._unread):
                self._connection.read_response()
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
        commands: list[tuple] = [("SET", f"{self.prefix}:inflight", delivery_id, "EX", JOURNAL_TTL)]
        if sent_before is not None:
            commands.insert(0, ("RPUSH", f"{self.prefix}:sent", sent_before))
        self._stream(*commands)

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
