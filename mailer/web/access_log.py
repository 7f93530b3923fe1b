"""gunicorn's access log without the tokens in reader links (`--logger-class` in the Procfile).

A confirmation or unsubscribe link is the reader's key to their subscription;
an access log kept for months must not hold them, in the request line or in a
Referer.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

TOKEN_IN_PATH = re.compile(r"(/(?:confirm|unsubscribe|resubscribe|preferences)/)[^/?#\s\"]+")
REDACTED = r"\1[token]"


def redact(text: str) -> str:
    return TOKEN_IN_PATH.sub(REDACTED, text)


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str) and "/" in value:
                atoms[key] = redact(value)
        return atoms
