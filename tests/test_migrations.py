"""Migrations: they build exactly the models, and `mailer db revision` starts a new one."""

from __future__ import annotations

import shutil

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import mailer.platform.migrate
from mailer.models import Base
from mailer.platform.migrate import MIGRATIONS, next_revision_id


def test_the_migrations_build_exactly_the_models(database_url):
    """A database upgraded to head has every table, column and index the models declare."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert drift == []


def test_mailer_db_revision_starts_the_next_numbered_migration(app, tmp_path, monkeypatch):
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts)  # never write into the package during a test
    monkeypatch.setattr(mailer.platform.migrate, "MIGRATIONS", scripts)
    expected = next_revision_id(scripts)

    result = app.test_cli_runner().invoke(args=["db", "revision", "-m", "Add a column"])

    assert result.exit_code == 0, result.output
    made = scripts / "versions" / f"{expected}_add_a_column.py"
    assert made.exists(), result.output
    text = made.read_text()
    assert f"revision = '{expected}'" in text
    assert f"down_revision = '{int(expected) - 1:04d}'" in text
    assert "mailer db upgrade" in result.output


def test_every_table_with_an_id_never_reuses_ids_on_sqlite(tmp_path):
    """Batch migrations rebuild SQLite tables; each rebuild must keep AUTOINCREMENT."""
    import sqlite3

    from mailer.platform.migrate import upgrade

    path = tmp_path / "ids.db"
    upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path)
    tables = dict(connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    connection.close()
    with_ids = [t.name for t in Base.metadata.sorted_tables if "id" in t.columns]
    assert with_ids
    for name in with_ids:
        assert "AUTOINCREMENT" in tables[name], name
