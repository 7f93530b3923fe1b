"""The SQLAlchemy engine and the per-app-context session."""

from __future__ import annotations

from typing import Any, cast

from flask import Flask, current_app, g
from sqlalchemy import CursorResult, Delete, Select, Update, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Web, worker and beat are separate processes writing one file: WAL lets
        # readers go on while one writes, and busy_timeout waits for the lock
        # instead of failing with "database is locked".
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # No server-side prepared statements: psycopg prepares a query after five runs, and
    # PostgreSQL may then keep a generic plan made while a table was empty (a sequential
    # scan) for the life of the connection. Importing 200,000 readers into a fresh table
    # ran at 850 rows a second that way, and claims slowed as a big send went on.
    return create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})


class Database:
    """Binds one engine per app; `db.session` is the current app context's session."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["MAILER"].database_url)
        app.extensions["mailer.db"] = {
            "engine": engine,
            "sessionmaker": sessionmaker(bind=engine, expire_on_commit=False),
        }
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        return current_app.extensions["mailer.db"]["engine"]

    @property
    def session(self) -> Session:
        if "mailer_session" not in g:
            g.mailer_session = current_app.extensions["mailer.db"]["sessionmaker"]()
        return g.mailer_session

    def transaction(self) -> SessionTransaction:
        """`with db.transaction():` commits on success, rolls back on error.

        Reads outside a transaction block begin one implicitly; it is ended here
        first (rolled back: writes only ever happen inside these blocks).
        """
        session = self.session
        if session.in_transaction():
            session.rollback()
        return session.begin()

    def change(self, statement: Update | Delete) -> int:
        """Runs a set-based UPDATE or DELETE; returns how many rows it changed.

        Loaded objects are not synchronized: the rows are re-read when needed.
        """
        options = statement.execution_options(synchronize_session=False)
        return cast(CursorResult[Any], self.session.execute(options)).rowcount

    def newest_page(
        self, model: Any, conditions: list[Any], page: int, per_page: int
    ) -> tuple[list[Any], int, int, int]:
        """One page of `model`'s rows that meet `conditions`, highest id first:
        (rows, total, the page asked for within 1..pages, pages)."""
        total = self.count(select(func.count()).select_from(model).where(*conditions))
        pages = max(1, -(-total // per_page))
        page = min(max(page, 1), pages)
        rows = self.session.scalars(
            select(model)
            .where(*conditions)
            .order_by(model.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
        return list(rows), total, page, pages

    def analyze(self, model: type) -> None:
        """Fresh planner statistics for a table that just grew (PostgreSQL; a no-op elsewhere).

        A table filled in one go (an import) is planned as if empty until autovacuum
        analyzes it, and it may be off: then each lookup of a thousand addresses was a
        sequential scan of the whole table.
        """
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                connection.exec_driver_sql(f"ANALYZE {model.__tablename__}")  # type: ignore[attr-defined]
                connection.commit()

    def insert(self, model: type) -> postgresql.Insert | sqlite.Insert:
        """INSERT for the database in use, with ON CONFLICT (both databases have it)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    def count(self, query: Select[int]) -> int:
        """The number a SELECT count(...) returns (0 for no row)."""
        return self.session.scalar(query) or 0

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("mailer_session", None)
        if session is not None:
            session.close()


db = Database()
