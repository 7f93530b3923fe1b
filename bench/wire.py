"""The wire's limit: Postfix's own C load generator, `smtp-source`, on the same sink.

`-d` keeps each session's connection open from message to message, as mailer does;
`-l` makes the payload the size of mailer's message. The clock includes connecting,
which for a few sessions on loopback is well under a millisecond.
"""

from __future__ import annotations

import subprocess
import time


def smtp_source(port: int, sessions: int, messages: int, size: int) -> float:
    """Messages per second smtp-source sends over `sessions` reused connections."""
    began = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-d",
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "news@example.org",
            "-t",
            "reader@example.org",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return messages / (time.perf_counter() - began)
