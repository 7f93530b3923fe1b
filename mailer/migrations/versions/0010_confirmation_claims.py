"""A confirmation mail being sent is claimed, so a dead worker's claim can go stale.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("confirmation_claimed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("confirmation_claimed_at")
