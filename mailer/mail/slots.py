"""A newsletter's per-reader parts (the reader's own links): slots the renderer places.

Each render draws a fresh marker and gives the template a placeholder made of it
wherever the template asks for a reader's link. Articles, feed entries and the
editor's words were written before that marker existed, so no content can hold
it: the message builder splices each reader's links in where the template put
them and nowhere else. Text that only looks like a slot is refused or dropped at
intake all the same, so no article reads as if it carried one.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping


class Slot(enum.Enum):
    """A reader's own link, by the template variable that places it; in the order of
    the values the message builder is given."""

    UNSUBSCRIBE = "unsubscribe_url"
    PREFERENCES = "preferences_url"


# Today's placeholders and the fixed ones of earlier versions (__MAILER_UNSUBSCRIBE_URL__).
_LOOKS_LIKE_A_SLOT = re.compile(r"__MAILER_\w*__", re.IGNORECASE)


def new_marker() -> str:
    return secrets.token_hex(16)


def placeholder(marker: str, slot: Slot) -> str:
    return f"__MAILER_SLOT_{marker}_{slot.name}__"


def placeholders(marker: str) -> tuple[str, ...]:
    """This render's placeholders, in the order of the readers' values."""
    return tuple(placeholder(marker, slot) for slot in Slot)


def template_context(marker: str) -> dict[str, str]:
    return {slot.value: placeholder(marker, slot) for slot in Slot}


def fill(text: str, marker: str | None, values: Mapping[Slot, str]) -> str:
    """The text with each slot replaced by its value: a copy for no reader in particular."""
    if marker is None:
        return text
    for slot, value in values.items():
        text = text.replace(placeholder(marker, slot), value)
    return text


def looks_like_a_slot(text: str) -> bool:
    return _LOOKS_LIKE_A_SLOT.search(text) is not None


def without_slot_text(text: str) -> str:
    """The text with everything that looks like a slot dropped; again until none is left,
    as dropping one can join the text around it into another."""
    while _LOOKS_LIKE_A_SLOT.search(text):
        text = _LOOKS_LIKE_A_SLOT.sub("", text)
    return text
