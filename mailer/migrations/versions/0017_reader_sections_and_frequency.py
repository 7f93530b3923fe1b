"""Readers choose sections and a frequency; a digest is sent per segment (set of sections).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# A CHECK constraint or a foreign key makes SQLite rebuild the table: it keeps AUTOINCREMENT.
KEEP_IDS = {"sqlite_autoincrement": True}
FREQUENCY = sa.Enum(
    "daily", "weekly", name="frequency", native_enum=False, create_constraint=True, length=20
)


def upgrade() -> None:
    with op.batch_alter_table("subscribers", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("sections", sa.String(length=1000), nullable=True))
        batch_op.add_column(
            sa.Column("frequency", FREQUENCY, nullable=False, server_default="daily")
        )
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(
            sa.Column("frequency", FREQUENCY, nullable=False, server_default="daily")
        )
        batch_op.add_column(
            sa.Column("nothing_new", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("subject_given", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "sections",
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_sections")),
    )
    op.create_table(
        "digest_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("sections_key", sa.String(length=1000), nullable=False),
        sa.Column("articles", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("render_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest_id"], ["digests.id"], name=op.f("fk_digest_segments_digest_id_digests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_segments")),
        sa.UniqueConstraint("digest_id", "sections_key", name="uq_digest_segments_digest_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("deliveries", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("segment_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_deliveries_segment_id_digest_segments", "digest_segments", ["segment_id"], ["id"]
        )
    with op.batch_alter_table("articles", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column("weekly_digest_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_articles_weekly_digest_id_digests", "digests", ["weekly_digest_id"], ["id"]
        )
        batch_op.create_index("ix_articles_weekly_digest_id", ["weekly_digest_id"])


def downgrade() -> None:
    with op.batch_alter_table("articles", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_index("ix_articles_weekly_digest_id")
        batch_op.drop_constraint("fk_articles_weekly_digest_id_digests", type_="foreignkey")
        batch_op.drop_column("weekly_digest_id")
    with op.batch_alter_table("deliveries", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_constraint("fk_deliveries_segment_id_digest_segments", type_="foreignkey")
        batch_op.drop_column("segment_id")
    op.drop_table("digest_segments")
    op.drop_table("sections")
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_column("subject_given")
        batch_op.drop_column("nothing_new")
        batch_op.drop_column("frequency")
    with op.batch_alter_table("subscribers", table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_column("frequency")
        batch_op.drop_column("sections")
