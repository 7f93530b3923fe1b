"""gunicorn's access log without the tokens in reader links (`--logger-class` in the Procfile).

A confirmation or unsubscribe link is the reader's key to their subscription;
an access log kept for months must not hold them, in the request line or in a
Referer.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

TOKEN_PAGES = ("confirm", "unsubscribe", "resubscribe", "preferences")


def _spelled_any_way(text: str) -> str:
    # The server decodes the path before routing, so /%70references/<token> and
    # /preferences%2F<token> reach the page as well: each character may come escaped.
    return "".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in text)


SLASH = _spelled_any_way("/")
TOKEN_IN_PATH = re.compile(
    rf"({SLASH}(?:{'|'.join(_spelled_any_way(page) for page in TOKEN_PAGES)}){SLASH})"
    r"[^/?#\s\"]+",
    re.IGNORECASE,
)
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
