"""Applies the Alembic migrations that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain escaped characters.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def next_revision_id(script_location: Path | None = None) -> str:
    """Revisions are numbered 0001, 0002, ...: the next free number."""
    versions = (script_location or MIGRATIONS) / "versions"
    numbers = [int(path.name[:4]) for path in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return f"{max(numbers, default=0) + 1:04d}"


def revision(
    database_url: str,
    message: str,
    *,
    autogenerate: bool = True,
    script_location: Path | None = None,
) -> Path:
    """Starts a new migration file; autogenerate compares the models with the database."""
    script_location = script_location or MIGRATIONS
    config = alembic_config(database_url)
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    script = command.revision(
        config,
        message=message,
        autogenerate=autogenerate,
        rev_id=next_revision_id(script_location),
    )
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic made no single revision")
    return Path(script.path)
