"""The SQLAlchemy engine and the per-app-context session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from flask import Flask, current_app, g
from sqlalchemy import CursorResult, Delete, Select, Update, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


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
        app.extensions["mailer.platform.db"] = {
            "engine": engine,
            "sessionmaker": sessionmaker(bind=engine, expire_on_commit=False),
        }
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        return current_app.extensions["mailer.platform.db"]["engine"]

    @property
    def session(self) -> Session:
        if "mailer_session" not in g:
            g.mailer_session = current_app.extensions["mailer.platform.db"]["sessionmaker"]()
        return g.mailer_session

    def unit_of_work(self) -> UnitOfWork:
        """The one transaction of a request, a task or a command, opened at that edge:
        committed at the end, rolled back on an error or a veto, and only after the
        commit what was deferred to it (queued jobs) runs."""
        return UnitOfWork(self.session, outermost=True)

    def transaction(self) -> UnitOfWork:
        """`with db.transaction():` a domain step. Inside an edge's unit of work it only
        flushes and commits with the unit, so steps compose; called where no unit is
        open (the send loop's claims and flushes, recovery) it is a unit of its own."""
        return UnitOfWork(self.session, outermost=False)

    def in_unit(self) -> bool:
        return bool(self.session.info.get(_UNIT))

    def after_commit(self, action: Callable[[], object]) -> None:
        """Runs `action` once the open unit of work has committed (never if it rolls
        back); at once when no unit is open. Jobs are enqueued this way, so a task never
        runs before the rows it needs are visible."""
        if self.in_unit():
            self.session.info.setdefault(_AFTER_COMMIT, []).append(action)
        else:
            action()

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


_UNIT = "mailer.unit_of_work"
_AFTER_COMMIT = "mailer.after_commit"


class UnitOfWork:
    """One transaction, or a step of the one already open (see Database.transaction)."""

    def __init__(self, session: Session, *, outermost: bool) -> None:
        self.session = session
        self.joined = bool(session.info.get(_UNIT))
        if outermost and self.joined:
            raise RuntimeError("a unit of work is already open: the edge opens one")
        self.vetoed = False

    def veto(self) -> None:
        """Roll back at the end instead of committing (an error page was the answer)."""
        self.vetoed = True

    def __enter__(self) -> Session:
        if self.joined:
            # A step reads afresh, as a transaction of its own did: its set-based changes
            # (db.change) do not update objects already loaded.
            self.session.flush()
            self.session.expire_all()
        else:
            if self.session.in_transaction():
                self.session.rollback()  # an implicit read: writes happen only in units
            self.session.info[_UNIT] = True
        return self.session

    def __exit__(self, exc_type: type[BaseException] | None, *_rest: object) -> None:
        if self.joined:
            if exc_type is None:
                self.session.flush()
            return
        actions: list[Callable[[], object]] = []
        try:
            if exc_type is None and not self.vetoed:
                self.session.commit()
                actions = self.session.info.get(_AFTER_COMMIT, [])
            else:
                self.session.rollback()
        except BaseException:
            self.session.rollback()
            raise
        finally:
            self.session.info[_UNIT] = False
            self.session.info.pop(_AFTER_COMMIT, None)
        for action in actions:
            action()


db = Database()
