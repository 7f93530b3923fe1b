"""Settings editors change in the console (the digest schedule).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=320), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_console_settings")),
    )


def downgrade() -> None:
    op.drop_table("console_settings")
