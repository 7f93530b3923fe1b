"""A digest's inputs (date, subject template, list and footer) fixed on its row.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    # Digests made before have none: their segments use the inputs of the day, as before.
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        batch.add_column(sa.Column("inputs", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        batch.drop_column("inputs")
