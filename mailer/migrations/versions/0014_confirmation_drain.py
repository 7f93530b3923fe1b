"""The confirmation drain finds the last minutes' requests by an index.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscribers_confirmation_requested_at", "subscribers", ["confirmation_requested_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_subscribers_confirmation_requested_at", table_name="subscribers")
