"""Thin views: each reads its input, calls one domain function, returns a page or JSON."""

from flask import Response


def framed_html(html: str, *, images: str = "https: http: data:") -> Response:
    """HTML of a mail shown inside one of our own pages' iframes: no scripts, our frames only."""
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
