"""Plain text from article HTML: the summary a digest shows when the site sent none."""

from __future__ import annotations

import html

import nh3

from mailer.models import Article

SUMMARY_CHARS = 300


def html_to_text(fragment: str) -> str:
    """The visible text of an HTML fragment, on one line."""
    return " ".join(html.unescape(nh3.clean(fragment, tags=set())).split())


def summary_of(article: Article) -> str:
    """The article's summary, or the start of its body as plain text, cut at a word."""
    text = " ".join((article.summary or "").split()) or html_to_text(article.body_html or "")
    if len(text) <= SUMMARY_CHARS:
        return text
    return text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"
