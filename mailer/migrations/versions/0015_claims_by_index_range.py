"""Claims take the lowest ids of one status from one index range.

The old (digest_id, status) index could not give rows in id order, so a claim walked
the primary key past every row already sent; at a million readers that was 40 % of
the send.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.create_index("ix_deliveries_digest_status_id", ["digest_id", "status", "id"])
        batch_op.drop_index("ix_deliveries_digest_status")


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.create_index("ix_deliveries_digest_status", ["digest_id", "status"])
        batch_op.drop_index("ix_deliveries_digest_status_id")
