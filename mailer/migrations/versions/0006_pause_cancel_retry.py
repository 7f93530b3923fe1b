"""Pause, cancel and retry-failed for digests.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch_op:
        batch_op.add_column(sa.Column("paused_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(
            sa.Column("gave_up", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("gave_up")
    with op.batch_alter_table("digests") as batch_op:
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("paused_at")
