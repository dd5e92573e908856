"""Database engines: SQLite (WAL, ``BEGIN IMMEDIATE``) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from crmbridge.errors import ConfigurationError

WRITE_OPTION = "crmbridge_write"
"""Execution option marking a connection's transactions as writes (``BEGIN IMMEDIATE``)."""


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, tuned for crmbridge's access pattern.

    SQLite: write-ahead logging so readers never block the writer, ``BEGIN IMMEDIATE`` so two
    processes never both start a write and deadlock on the upgrade from a read lock, a busy timeout
    so a second daemon waits rather than fails, and foreign keys on. PostgreSQL: connection
    pre-ping so a restarted server does not fail the next cycle.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            poolclass=StaticPool if memory else None,
            **kwargs,
        )
        _tune_sqlite(engine, memory)
        return engine
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    raise ConfigurationError(
        f"database URL scheme {parsed.drivername!r} is not supported",
        hint="use sqlite:///path/to/file.sqlite3 or postgresql+psycopg://user@host/db in "
        "CRMBRIDGE_DATABASE_URL",
    )


def _tune_sqlite(engine: Engine, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN IMMEDIATE is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the write lock up front (no deadlock on a read-to-write upgrade); readers
        # begin deferred, so WAL lets them read while a writer writes.
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
