"""Articles become ready for a digest once the intake worker has taken them off the queue.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch_op:
        batch_op.add_column(sa.Column("ready_at", UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_articles_ready_at"), ["ready_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_ready_at"))
        batch_op.drop_column("ready_at")
