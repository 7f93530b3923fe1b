"""A rendered digest's slots are marked by a marker of its own render, not a fixed text.

Bodies rendered before held the fixed placeholders, which an article's own text could
hold too. Every template so far put each slot once, in the footer after the last
article, the unsubscribe link last of all: so the last unsubscribe placeholder is the
slot, and so is the preferences placeholder only when nothing but the template's own
words lies between it and that one. Every other occurrence is an article's text and
stays as it is.

Revision ID: 0018
Revises: 0017
"""

import re
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

KEEP_IDS = {"sqlite_autoincrement": True}
TABLES = ("digests", "digest_segments")
OLD_UNSUBSCRIBE = "__MAILER_UNSUBSCRIBE_URL__"
OLD_PREFERENCES = "__MAILER_PREFERENCES_URL__"
# What the templates put between the preferences slot and the unsubscribe slot.
PREFERENCES_BEFORE_UNSUBSCRIBE = {
    "text_body": re.compile(re.escape(OLD_PREFERENCES) + r"(?=\nUnsubscribe with one click: \Z)"),
    "html_body": re.compile(
        re.escape(OLD_PREFERENCES)
        + r'(?="[^<>]*>Choose your sections, or get it weekly</a></p>\s*<a\b[^<>]*href="\Z)'
    ),
}


def _new(marker: str, name: str) -> str:
    # mailer.mail.slots.placeholder as of this revision.
    return f"__MAILER_SLOT_{marker}_{name}__"


def _marked(body: str, marker: str, column: str) -> str:
    cut = body.rfind(OLD_UNSUBSCRIBE)
    if cut < 0:
        return body
    before, after = body[:cut], body[cut + len(OLD_UNSUBSCRIBE) :]
    preferences = PREFERENCES_BEFORE_UNSUBSCRIBE[column].search(before)
    if preferences is not None:
        start, end = preferences.span()
        before = before[:start] + _new(marker, "PREFERENCES") + before[end:]
    return before + _new(marker, "UNSUBSCRIBE") + after


def _mark_rows(table: sa.TableClause) -> None:
    connection = op.get_bind()
    ids = connection.scalars(sa.select(table.c.id).order_by(table.c.id)).all()
    for row_id in ids:  # one row at a time: bodies are up to 100 KB each
        text_body, html_body = connection.execute(
            sa.select(table.c.text_body, table.c.html_body).where(table.c.id == row_id)
        ).one()
        if not text_body and not html_body:
            continue
        marker = secrets.token_hex(16)
        connection.execute(
            table.update()
            .where(table.c.id == row_id)
            .values(
                slot_marker=marker,
                text_body=_marked(text_body or "", marker, "text_body"),
                html_body=_marked(html_body or "", marker, "html_body"),
            )
        )


def _table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Integer()),
        sa.column("text_body", sa.Text()),
        sa.column("html_body", sa.Text()),
        sa.column("slot_marker", sa.String(32)),
    )


def upgrade() -> None:
    for name in TABLES:
        with op.batch_alter_table(name, table_kwargs=KEEP_IDS) as batch_op:
            batch_op.add_column(sa.Column("slot_marker", sa.String(length=32), nullable=True))
        _mark_rows(_table(name))


def _unmark_rows(table: sa.TableClause) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(table.c.id, table.c.slot_marker).where(table.c.slot_marker.is_not(None))
    ).all()
    for row_id, marker in rows:
        text_body, html_body = connection.execute(
            sa.select(table.c.text_body, table.c.html_body).where(table.c.id == row_id)
        ).one()
        old = {
            _new(marker, "UNSUBSCRIBE"): OLD_UNSUBSCRIBE,
            _new(marker, "PREFERENCES"): OLD_PREFERENCES,
        }
        for new, fixed in old.items():
            text_body = (text_body or "").replace(new, fixed)
            html_body = (html_body or "").replace(new, fixed)
        connection.execute(
            table.update()
            .where(table.c.id == row_id)
            .values(text_body=text_body, html_body=html_body)
        )


def downgrade() -> None:
    for name in reversed(TABLES):
        _unmark_rows(_table(name))
        with op.batch_alter_table(name, table_kwargs=KEEP_IDS) as batch_op:
            batch_op.drop_column("slot_marker")
