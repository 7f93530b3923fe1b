"""A reason and a receiving domain on every bounce; refusals of the sender are a kind.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

KEEP_IDS = {"sqlite_autoincrement": True}
OLD = "kind IN ('hard', 'soft', 'complaint')"
NEW = "kind IN ('hard', 'soft', 'complaint', 'refused')"


def upgrade() -> None:
    # SQLite rebuilds the table to change a CHECK; keep its ids never reused.
    with op.batch_alter_table("bounces", table_kwargs=KEEP_IDS) as batch:
        batch.add_column(sa.Column("reason", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("domain", sa.String(length=253), nullable=True))
        batch.create_index("ix_bounces_domain", ["domain"], unique=False)
        batch.drop_constraint(op.f("ck_bounces_bounce_kind"), type_="check")
        batch.create_check_constraint("bounce_kind", NEW)


def downgrade() -> None:
    op.execute("DELETE FROM bounces WHERE kind = 'refused'")
    with op.batch_alter_table("bounces", table_kwargs=KEEP_IDS) as batch:
        batch.drop_constraint(op.f("ck_bounces_bounce_kind"), type_="check")
        batch.create_check_constraint("bounce_kind", OLD)
        batch.drop_index("ix_bounces_domain")
        batch.drop_column("domain")
        batch.drop_column("reason")
