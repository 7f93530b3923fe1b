"""What an editor decides about the next digest before it goes: its subject, an introduction,
the articles' titles, summaries and order.

The subject and introduction wait in a draft (a console setting) until a digest is made,
whoever makes it (the console, the API, the schedule); that digest takes them, and the
next draft starts empty. Edits to articles are edits to the waiting articles themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import select

from mailer.content.articles import waiting_in_digest_order
from mailer.content.summaries import sanitize_fragment
from mailer.mail import slots
from mailer.models import Article, ConsoleSetting, utcnow
from mailer.platform.db import db
from mailer.platform.errors import InvalidInput, NotFound

DRAFT_KEY = "next_digest"
SUBJECT_TEMPLATE_KEY = "subject_template"
DEFAULT_SUBJECT_TEMPLATE = "{list_name}: {title}{more}"
SUBJECT_FIELDS = ("list_name", "title", "more", "count", "date")
MAX_SUBJECT = 200
MAX_INTRO = 2000
MAX_TITLE = 500
MAX_SUMMARY = 5000


@dataclass(frozen=True)
class Draft:
    subject: str | None = None  # None: made from the subject template
    intro: str | None = None


@dataclass(frozen=True)
class Intro:
    html: str
    text: str


# --- the subject --------------------------------------------------------------


def clean_subject(raw: object) -> str | None:
    """An editor's subject: one line, at most 200 characters; empty means "from the template"."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput("The subject must be text.")
    if not raw.isprintable():
        raise InvalidInput("The subject must be one line of text.")
    subject = " ".join(raw.split())
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"The subject can be at most {MAX_SUBJECT} characters long.")
    return subject or None


def subject_template() -> str:
    stored = db.session.get(ConsoleSetting, SUBJECT_TEMPLATE_KEY)
    return stored.value if stored is not None else DEFAULT_SUBJECT_TEMPLATE


def render_subject(template: str, *, list_name: str, titles: list[str], date: str) -> str:
    more = f" and {len(titles) - 1} more" if len(titles) > 1 else ""
    try:
        subject = template.format(
            list_name=list_name, title=titles[0] if titles else "", more=more,
            count=len(titles), date=date,
        )  # fmt: skip
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise InvalidInput(
            f"The subject template does not work ({exc}); use "
            + ", ".join("{" + name + "}" for name in SUBJECT_FIELDS)
        ) from None
    return " ".join(subject.split())[:MAX_SUBJECT]


def set_subject_template(template: str, *, changed_by: str) -> None:
    template = " ".join(template.split()) or DEFAULT_SUBJECT_TEMPLATE
    render_subject(template, list_name="List", titles=["A title", "Another"], date="1 May")
    _store(SUBJECT_TEMPLATE_KEY, template, changed_by)


# --- the introduction ---------------------------------------------------------

LINK_SCHEMES = ("http://", "https://", "mailto:")


class _IntroMarkdown(MarkdownIt):
    """CommonMark with only what an introduction needs: paragraphs, *emphasis*,
    **strong**, [links](https://...) and lists; no HTML, headings, images or code, so
    those are shown as the characters typed."""

    def __init__(self) -> None:
        super().__init__("zero", {"html": False, "linkify": False, "typographer": False})
        self.enable(["list", "emphasis", "link", "newline"])

    def validateLink(self, url: str) -> bool:
        # A link to anything else stays the text typed; nh3 checks the schemes again.
        return url.strip().lower().startswith(LINK_SCHEMES)


_MARKDOWN = _IntroMarkdown()


def clean_intro(raw: object) -> str | None:
    """The introduction as typed: plain text, or a little Markdown (paragraphs, **bold**,
    *italic*, [links](https://...), lists). Stored as typed, rendered by render_intro()."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInput("The introduction must be text.")
    text = raw.replace("\r\n", "\n").strip()
    if any(not c.isprintable() and c not in "\n\t" for c in text):
        raise InvalidInput("The introduction holds characters that are not text.")
    if len(text) > MAX_INTRO:
        raise InvalidInput(f"The introduction can be at most {MAX_INTRO} characters long.")
    return text or None


def render_intro(intro: str | None) -> Intro | None:
    if not intro:
        return None
    tokens = _MARKDOWN.parse(intro)
    # Rendered with HTML off, then sanitized: nothing an editor types becomes a script.
    html = sanitize_fragment(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})).strip()
    return Intro(html=html, text=_plain_text(tokens))


def _plain_text(tokens: Sequence[Token]) -> str:
    """The plain-text part's introduction: paragraphs apart, list items a line each,
    links as `words (URL)`."""
    parts: list[tuple[str, int | None]] = []  # (text, the list it is an item of)
    numbers: list[int | None] = []  # per open list: the next item's number, None for bullets
    lists = 0  # outermost lists seen: items of one list go a line each, lists stand apart
    marker = ""
    for token in tokens:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists += not numbers
            start = token.attrGet("start") if token.type == "ordered_list_open" else None
            numbers.append(None if token.type == "bullet_list_open" else int(start or 1))
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            numbers.pop()
        elif token.type == "list_item_open":
            number = numbers[-1]
            marker = "  " * (len(numbers) - 1) + ("- " if number is None else f"{number}. ")
            if number is not None:
                numbers[-1] = number + 1
        elif token.type == "inline":
            parts.append((marker + _inline_text(token.children or []), lists if numbers else None))
            marker = ""
    text = ""
    for index, (part, in_list) in enumerate(parts):
        if index:
            text += "\n" if in_list is not None and parts[index - 1][1] == in_list else "\n\n"
        text += part
    return text


def _inline_text(children: Sequence[Token]) -> str:
    words: list[str] = []
    hrefs: list[str] = []
    for child in children:
        if child.type == "text":
            words.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            words.append(" ")
        elif child.type == "link_open":
            hrefs.append(str(child.attrGet("href") or ""))
        elif child.type == "link_close":
            words.append(f" ({hrefs.pop()})")
    return " ".join("".join(words).split())


# --- the draft ------------------------------------------------------------------


def draft() -> Draft:
    stored = db.session.get(ConsoleSetting, DRAFT_KEY)
    if stored is None:
        return Draft()
    value = json.loads(stored.value)
    return Draft(subject=value.get("subject"), intro=value.get("intro"))


def save_draft(subject: object, intro: object, *, changed_by: str) -> Draft:
    saved = Draft(subject=clean_subject(subject), intro=clean_intro(intro))
    _store(DRAFT_KEY, json.dumps({"subject": saved.subject, "intro": saved.intro}), changed_by)
    return saved


def take_draft() -> Draft:
    """Inside the transaction that makes a digest: the draft is used up by it."""
    taken = draft()
    stored = db.session.get(ConsoleSetting, DRAFT_KEY)
    if stored is not None:
        db.session.delete(stored)
    return taken


def _store(key: str, value: str, changed_by: str) -> None:
    with db.transaction():
        db.session.merge(
            ConsoleSetting(key=key, value=value, changed_by=changed_by, changed_at=utcnow())
        )


# --- the articles -------------------------------------------------------------


def _waiting(article_id: int) -> Article:
    article = db.session.scalar(
        select(Article).where(
            Article.id == article_id, Article.digest_id.is_(None), Article.removed_at.is_(None)
        )
    )
    if article is None:
        raise NotFound("That article is not waiting for the next digest any more.")
    return article


def edit_article(article_id: int, title: object, summary: object) -> None:
    """A waiting article's title and summary, as the next digest will show them."""
    if not isinstance(title, str) or not title.strip() or not title.isprintable():
        raise InvalidInput("A title is one line of text and cannot be empty.")
    if not isinstance(summary, str):
        raise InvalidInput("The summary must be text.")
    summary = summary.replace("\r\n", "\n").strip()
    if any(not c.isprintable() and c not in "\n\t" for c in summary):
        raise InvalidInput("The summary holds characters that are not text.")
    if len(title) > MAX_TITLE or len(summary) > MAX_SUMMARY:
        raise InvalidInput(f"Titles are at most {MAX_TITLE}, summaries {MAX_SUMMARY} characters.")
    if slots.looks_like_a_slot(title) or slots.looks_like_a_slot(summary):
        raise InvalidInput("Text of the form __MAILER_...__ is where mailer puts readers' links.")
    with db.transaction():
        article = _waiting(article_id)
        article.title = " ".join(title.split())
        article.summary = summary or None


def move_article(article_id: int, step: int) -> None:
    """Moves a waiting article up (-1) or down (+1) in the next digest."""
    with db.transaction():
        ordered = waiting_in_digest_order()
        ids = [a.id for a in ordered]
        if article_id not in ids:
            raise NotFound("That article is not waiting for the next digest any more.")
        index = ids.index(article_id)
        target = min(max(index + step, 0), len(ids) - 1)
        ordered.insert(target, ordered.pop(index))
        for position, article in enumerate(ordered):
            article.position = position
