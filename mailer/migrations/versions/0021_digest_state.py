"""One digest state column: paused, cancelling and cancelled are states, not derived.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

KEEP_IDS = {"sqlite_autoincrement": True}
OLD = "status IN ('sending', 'sent', 'sent_with_failures')"
NEW = "status IN ('sending', 'paused', 'cancelling', 'sent', 'sent_with_failures', 'cancelled')"


def upgrade() -> None:
    # SQLite rebuilds the table to change a CHECK; keep its ids never reused.
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        batch.drop_constraint(op.f("ck_digests_digest_status"), type_="check")
        batch.create_check_constraint("digest_status", NEW)
    op.execute(
        "UPDATE digests SET status = 'cancelled' WHERE cancelled_at IS NOT NULL"
        " AND status <> 'sending'"
    )
    op.execute(
        "UPDATE digests SET status = 'cancelling' WHERE cancelled_at IS NOT NULL"
        " AND status = 'sending'"
    )
    op.execute(
        "UPDATE digests SET status = 'paused' WHERE paused_at IS NOT NULL AND status = 'sending'"
    )


def downgrade() -> None:
    op.execute("UPDATE digests SET status = 'sending' WHERE status IN ('paused', 'cancelling')")
    op.execute("UPDATE digests SET status = 'sent' WHERE status = 'cancelled'")
    with op.batch_alter_table("digests", table_kwargs=KEEP_IDS) as batch:
        batch.drop_constraint(op.f("ck_digests_digest_status"), type_="check")
        batch.create_check_constraint("digest_status", OLD)
