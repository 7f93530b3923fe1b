"""The publisher's newsletter: article order, the editor's introduction, the archive, welcomes.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NEVER_REUSED = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("articles", table_kwargs=NEVER_REUSED) as batch:
        batch.add_column(sa.Column("position", sa.Integer(), nullable=True))
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.add_column(sa.Column("intro", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                "hidden_from_archive", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.alter_column("hidden_from_archive", server_default=None, existing_type=sa.Boolean())
    with op.batch_alter_table("subscribers", table_kwargs=NEVER_REUSED) as batch:
        batch.add_column(sa.Column("welcome_claimed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("welcome_sent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_column("welcome_sent_at")
        batch.drop_column("welcome_claimed_at")
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_column("hidden_from_archive")
        batch.drop_column("intro")
    with op.batch_alter_table("articles", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_column("position")
