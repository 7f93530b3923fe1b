"""Thin views: each reads its input, calls one domain function, returns a page or JSON."""

import re

from flask import Response

_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def framed_html(
    html: str, *, images: str = "https: http: data:", links_open: str = "_blank"
) -> Response:
    """HTML of a mail shown inside one of our own pages' iframes: no scripts, our frames only.

    Its links open outside the frame (`links_open`: `_top` or `_blank`): every page they lead
    to forbids framing, so followed inside the frame they would show a broken frame.
    """
    base = f'<base target="{links_open}">'
    head = _HEAD.search(html)
    html = html[: head.end()] + base + html[head.end() :] if head else base + html
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
