"""Counts in words: "1 reader", "2 readers", in pages, mails and the command's messages."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`count` and the noun that goes with it: plural(1, "reader") is "1 reader".

    The noun may hold words before it ("daily reader"); the last word takes the -s."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {word}"
