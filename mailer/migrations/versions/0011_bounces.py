"""Bounces and complaints: a table of them, and readers who bounced.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NEVER_REUSED = {"sqlite_autoincrement": True}
OLD = "status IN ('pending', 'active', 'unsubscribed')"
NEW = "status IN ('pending', 'active', 'unsubscribed', 'bounced')"


def upgrade() -> None:
    # SQLite rebuilds the table to change a CHECK; keep its ids never reused.
    with op.batch_alter_table("subscribers", table_kwargs=NEVER_REUSED) as batch:
        batch.add_column(sa.Column("bounced_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("complained_at", UTCDateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_subscribers_subscriber_status"), type_="check")
        batch.create_check_constraint("subscriber_status", NEW)
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "hard",
                "soft",
                "complaint",
                name="bounce_kind",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_bounces_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_bounces_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["digests.id"], name=op.f("fk_bounces_digest_id_digests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_bounces_subscriber_id"), "bounces", ["subscriber_id"])
    op.create_index(op.f("ix_bounces_delivery_id"), "bounces", ["delivery_id"])
    op.create_index(op.f("ix_bounces_digest_id"), "bounces", ["digest_id"])


def downgrade() -> None:
    op.drop_table("bounces")
    with op.batch_alter_table("subscribers", table_kwargs=NEVER_REUSED) as batch:
        batch.drop_constraint(op.f("ck_subscribers_subscriber_status"), type_="check")
        batch.create_check_constraint("subscriber_status", OLD)
        batch.drop_column("complained_at")
        batch.drop_column("bounced_at")
