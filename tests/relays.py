"""A small SMTP relay whose every reply can be slowed or trickled, for the claim tests.

aiosmtpd writes each reply whole and has no hook for the 354 to DATA; this one answers
every step (banner, EHLO, MAIL, RCPT, DATA, the final dot) through `pace`, so a test
can make a relay slow at every step or send a reply a byte at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from tests.conftest import free_port


@dataclass(frozen=True)
class Pace:
    delay: float = 0.0  # before the reply
    byte_gap: float = 0.0  # between its bytes: a trickle, when above 0


Policy = Callable[[str, int], Pace]  # (step, ordinal of the MAIL command) -> pace


class PacedRelay:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.port = free_port()
        self.delivered: Counter[str] = Counter()
        self.mails = 0
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._session, "127.0.0.1", self.port), self._loop
        )
        self._server = future.result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            await asyncio.sleep(0.05)  # the transports close their sockets on the next turns

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _reply(self, writer: asyncio.StreamWriter, step: str, ordinal: int, text: str):
        pace = self.policy(step, ordinal)
        await asyncio.sleep(pace.delay)
        data = (text + "\r\n").encode()
        if pace.byte_gap:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(pace.byte_gap)
        else:
            writer.write(data)
            await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        ordinal, recipients = 0, []
        try:
            await self._reply(writer, "banner", ordinal, "220 paced.example ESMTP")
            while line := await reader.readline():
                command = line.decode("ascii", "replace").strip()
                verb = command[:4].upper()
                if verb == "EHLO":
                    await self._reply(
                        writer, "ehlo", ordinal, "250-paced.example\r\n250 PIPELINING"
                    )
                elif verb == "MAIL":
                    with self.lock:
                        self.mails += 1
                        ordinal = self.mails
                    recipients = []
                    await self._reply(writer, "mail", ordinal, "250 2.1.0 Ok")
                elif verb == "RCPT":
                    recipients.append(command.split("<", 1)[1].rstrip(">").lower())
                    await self._reply(writer, "rcpt", ordinal, "250 2.1.5 Ok")
                elif verb == "DATA":
                    await self._reply(writer, "data", ordinal, "354 End data with .")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    with self.lock:
                        self.delivered.update(recipients)
                    await self._reply(writer, "dot", ordinal, "250 2.0.0 Ok: queued")
                elif verb == "QUIT":
                    await self._reply(writer, "quit", ordinal, "221 Bye")
                    break
                else:  # RSET, NOOP
                    await self._reply(writer, "other", ordinal, "250 Ok")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
