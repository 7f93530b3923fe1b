"""Links reach their own reader: a per-reader link key, ids never reused on SQLite,
logouts that end sessions, and digest triggers of any length.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID_TABLES = [
    "subscribers",
    "api_tokens",
    "articles",
    "digests",
    "deliveries",
    "send_claims",
    "feeds",
    "editors",
    "suppressions",
    "subscriber_imports",
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("link_key", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("legacy_links", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    # A random key for every reader already there; their old links keep working.
    random_key = "lower(hex(randomblob(12)))" if sqlite else "md5(random()::text || id::text)"
    op.execute(f"UPDATE subscribers SET link_key = {random_key}")  # noqa: S608 - no input
    with op.batch_alter_table("subscribers") as batch:
        batch.alter_column("link_key", existing_type=sa.String(length=32), nullable=False)
        batch.alter_column("legacy_links", server_default=None, existing_type=sa.Boolean())
    with op.batch_alter_table("editors") as batch:
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("editors") as batch:
        batch.alter_column("session_epoch", server_default=None, existing_type=sa.Integer())
    with op.batch_alter_table("digests") as batch:
        batch.alter_column("trigger", type_=sa.Text(), existing_type=sa.String(length=40))
    if sqlite:
        # AUTOINCREMENT: SQLite otherwise gives the largest id again after a delete.
        for table in ID_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.alter_column("trigger", type_=sa.String(length=40), existing_type=sa.Text())
    with op.batch_alter_table("editors") as batch:
        batch.drop_column("session_epoch")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("legacy_links")
        batch.drop_column("link_key")
