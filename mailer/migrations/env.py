"""Alembic environment: the URL comes from mailer's settings, never from an ini file."""

from alembic import context
from sqlalchemy import create_engine

from mailer.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if url is None:
    raise RuntimeError(
        "mailer.platform.migrate sets sqlalchemy.url; run migrations with `mailer db`"
    )
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
