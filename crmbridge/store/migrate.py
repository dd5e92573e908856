"""Schema migrations: ``crmbridge db upgrade`` brings any store to the current schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from crmbridge.store.engine import WRITE_OPTION

MIGRATIONS = Path(__file__).parent / "migrations"
FOREIGN_PREFIXES = ("procrastinate_",)
"""Tables in the store that belong to a library, not to crmbridge's models (procrastinate's, on
PostgreSQL): the migrations create them, and comparisons of the models with the database skip
them."""
MIGRATION_LOCK = 0x63726D62_6D67  # "crmb" "mg": pg_advisory_xact_lock key of the upgrade


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's ``include_object`` filter: leave out the tables of :data:`FOREIGN_PREFIXES`."""
    return not (type_ == "table" and name is not None and name.startswith(FOREIGN_PREFIXES))


def _take_write_lock(connection: Connection) -> None:
    """SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL has no such lock, so workers
    starting at once would race through the same migration: an advisory lock makes them queue."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent; safe when two processes start at
    once: the write lock is taken before the schema is read)."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            _take_write_lock(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            _take_write_lock(connection)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config_plain()).get_current_head()
    assert head is not None
    return head


def alembic_config_plain() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
