"""The store's migrations, on SQLite and PostgreSQL: up from empty, down to base, up again, and the
schema they build is exactly ``crmbridge.store.tables.metadata``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from crmbridge.store.engine import create_store_engine
from crmbridge.store.migrate import (
    FOREIGN_PREFIXES,
    current_revision,
    downgrade,
    head_revision,
    include_object,
    upgrade,
)
from crmbridge.store.tables import metadata


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on an empty store (SQLite file or fresh PostgreSQL schema)."""
    created = create_store_engine(store_url)
    yield created
    created.dispose()


def tables(engine: Engine) -> set[str]:
    """The tables in the store, alembic's own bookkeeping and procrastinate's tables left out."""
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    return {n for n in names if not n.startswith(FOREIGN_PREFIXES)}


def schema_diff(engine: Engine) -> list[Any]:
    """What alembic's autogenerate would change to make the store match the metadata."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "render_as_batch": engine.dialect.name == "sqlite",
                "include_object": include_object,
            },
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_from_empty_to_head(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert tables(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert tables(engine) == set(metadata.tables)


def test_migrated_schema_matches_the_metadata(engine: Engine) -> None:
    upgrade(engine)
    assert schema_diff(engine) == []


def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert tables(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []


def test_the_comparison_sees_a_difference(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN stray_note TEXT")
    [diff] = schema_diff(engine)
    assert diff[0] == "remove_column"
    assert (diff[2], diff[3].name) == ("runs", "stray_note")
