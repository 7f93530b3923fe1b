"""Delivery rows made by a worker, range by range, while the first batches already send.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NEVER_REUSED = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.add_column(
            sa.Column("materialized_up_to", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("materialized_at", UTCDateTime(), nullable=True))
    # Every digest made so far had all its rows made at once.
    op.execute("UPDATE digests SET materialized_at = created_at")
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.alter_column("materialized_up_to", server_default=None, existing_type=sa.Integer())


def downgrade() -> None:
    with op.batch_alter_table("digests", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_column("materialized_at")
        batch.drop_column("materialized_up_to")
