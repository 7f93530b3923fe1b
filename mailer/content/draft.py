"""What an editor decides about the next digest before it goes: its subject, an introduction,
the articles' titles, summaries and order.

The subject and introduction wait in a draft (a console setting) until a digest is made,
whoever makes it (the console, the API, the schedule); that digest takes them, and the
next draft starts empty. Edits to articles are edits to the waiting articles themselves.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

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

LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s)]{1,2000})\)")
BOLD = re.compile(r"\*\*([^*\n]{1,500})\*\*")
ITALIC = re.compile(r"(?<![*\w])\*([^*\n]{1,500})\*(?![*\w])")


def clean_intro(raw: object) -> str | None:
    """The introduction as typed: plain text, or a little Markdown (paragraphs, **bold**,
    *italic*, [links](https://...)). Stored as typed, rendered by render_intro()."""
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
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", intro) if p.strip()]
    html_parts = []
    for paragraph in paragraphs:
        marked = html.escape(paragraph, quote=False)
        marked = LINK.sub(lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', marked)
        marked = BOLD.sub(r"<strong>\1</strong>", marked)
        marked = ITALIC.sub(r"<em>\1</em>", marked)
        html_parts.append(f"<p>{marked}</p>")
    text_parts = []
    for paragraph in paragraphs:
        plain = LINK.sub(r"\1 (\2)", paragraph)
        plain = BOLD.sub(r"\1", plain)
        text_parts.append(ITALIC.sub(r"\1", plain))
    # Escaped first, then marked up, then sanitized: nothing an editor types becomes a script.
    return Intro(html=sanitize_fragment("".join(html_parts)), text="\n\n".join(text_parts))


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
