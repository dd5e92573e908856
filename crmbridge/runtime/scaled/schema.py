"""procrastinate's tables and functions, set up through crmbridge's own migrations.

``crmbridge db upgrade`` applies procrastinate's schema on PostgreSQL (migration 0002), in the
schema crmbridge's tables live in, so one ``search_path`` serves both and a store is set up by one
command. On SQLite there is nothing to do: the scaled runtime needs PostgreSQL.

procrastinate keeps no version table of its own, so the version that laid the schema down is kept
in a comment on ``procrastinate_jobs`` (``crmbridge status`` shows it); a later procrastinate whose
schema changed comes with a crmbridge migration that applies procrastinate's migration files from
that version on.
"""

from __future__ import annotations

import logging
from importlib import metadata

from sqlalchemy import Connection, text

log = logging.getLogger("crmbridge.runtime.scaled")

SCHEMA_LOCK = 0x63726D62_7363  # "crmb" "sc": one applier at a time (pg_advisory_xact_lock)
PREFIX = "procrastinate_"
"""Every table, type and function procrastinate creates starts with this."""


def procrastinate_version() -> str | None:
    """The installed procrastinate's version, or ``None`` when it is not installed."""
    try:
        return metadata.version("procrastinate")
    except metadata.PackageNotFoundError:
        return None


def has_schema(conn: Connection) -> bool:
    """Whether procrastinate's tables exist in the store's schema."""
    found = conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar_one()
    return bool(found)


def applied_version(conn: Connection) -> str | None:
    """The procrastinate version that applied the schema (from the table comment), if known."""
    comment = conn.execute(
        text("SELECT obj_description(to_regclass('procrastinate_jobs'), 'pg_class')")
    ).scalar_one_or_none()
    if not comment or not str(comment).startswith("procrastinate "):
        return None
    return str(comment).split()[1]


def apply_schema(conn: Connection) -> bool:
    """Create procrastinate's schema in the caller's transaction; False when there was nothing to
    do (already there) or nothing to do it with (procrastinate not installed: logged)."""
    version = procrastinate_version()
    if version is None:
        log.warning(
            "procrastinate is not installed, so its schema was not set up; the scaled runtime "
            "sets it up when it first starts (pip install 'crmbridge[scaled]')"
        )
        return False
    # Two workers starting at once both find the schema missing; the lock makes one wait.
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    if has_schema(conn):
        return False
    from procrastinate.schema import SchemaManager

    # The schema is many statements with no parameters: psycopg runs it as one simple query only
    # through its own cursor (SQLAlchemy would pass parameters and parse the % signs in it).
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        cursor.execute(SchemaManager.get_schema())
    conn.execute(
        text(f"COMMENT ON TABLE procrastinate_jobs IS 'procrastinate {version} (crmbridge)'")
    )
    log.info("procrastinate %s schema applied", version)
    return True


def drop_schema(conn: Connection) -> None:
    """Remove every procrastinate table, type and function from the store's schema."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    for kind in ("table", "function", "type"):
        names = _names(conn, kind, schema)
        if names:
            conn.execute(text(f"DROP {kind.upper()} IF EXISTS {names} CASCADE"))


_OBJECTS = {
    "table": "SELECT quote_ident(tablename) FROM pg_tables "
    "WHERE schemaname = :schema AND tablename LIKE :like",
    "function": "SELECT p.oid::regprocedure::text FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = :schema AND p.proname LIKE :like",
    # Enums, and composite types made by CREATE TYPE (not the row types of tables).
    "type": "SELECT quote_ident(t.typname) FROM pg_type t "
    "JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_class c ON c.oid = t.typrelid "
    "WHERE n.nspname = :schema AND t.typname LIKE :like "
    "AND (t.typtype = 'e' OR (t.typtype = 'c' AND c.relkind = 'c'))",
}


def _names(conn: Connection, kind: str, schema: str) -> str:
    """procrastinate's objects of one kind in ``schema``, quoted and comma-separated."""
    like = PREFIX.replace("_", r"\_") + "%"
    rows = conn.execute(text(_OBJECTS[kind]), {"schema": schema, "like": like})
    return ", ".join(str(r[0]) for r in rows)
