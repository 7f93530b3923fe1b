"""A finished digest's tallies on its row: History and the dashboard read no delivery rows.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

KEEP_IDS = {"sqlite_autoincrement": True}
TALLIES = {
    "sent_count": "sent",
    "failed_count": "failed",
    "unknown_count": "unknown",
    "skipped_count": "skipped",
}


def upgrade() -> None:
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        for column in TALLIES:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
    # Digests finished before are counted once, here.
    for column, status in TALLIES.items():
        op.execute(
            f"UPDATE digests SET {column} = (SELECT count(*) FROM deliveries "  # noqa: S608
            f"WHERE deliveries.digest_id = digests.id AND deliveries.status = '{status}') "
            "WHERE finished_at IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        for column in TALLIES:
            batch.drop_column(column)
