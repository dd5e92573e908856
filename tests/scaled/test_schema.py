"""procrastinate's schema comes with crmbridge's own migrations, on PostgreSQL only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.runtime.scaled.schema import applied_version, apply_schema, has_schema
from crmbridge.store.engine import create_store_engine
from crmbridge.store.migrate import downgrade, head_revision, upgrade


def procrastinate_objects(url: str) -> dict[str, int]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename LIKE 'procrastinate%'), (SELECT count(*) FROM pg_proc p JOIN "
                    "pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema() "
                    "AND p.proname LIKE 'procrastinate%'), (SELECT count(*) FROM pg_type t JOIN "
                    "pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = current_schema() "
                    "AND t.typname LIKE 'procrastinate%')"
                )
            ).one()
    finally:
        engine.dispose()
    return {"tables": counts[0], "functions": counts[1], "types": counts[2]}


@pytest.mark.postgres
def test_db_upgrade_sets_up_procrastinate_on_postgresql(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", pg_url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"schema upgraded empty → {head_revision()}" in result.output
    found = procrastinate_objects(pg_url)
    assert found["tables"] == 4
    assert found["functions"] > 10
    engine = create_store_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert has_schema(conn)
            from importlib.metadata import version

            assert applied_version(conn) == version("procrastinate")
        with engine.begin() as conn:
            assert apply_schema(conn) is False, "applied once only"
        downgrade(engine, "0001")
        assert procrastinate_objects(pg_url) == {"tables": 0, "functions": 0, "types": 0}
        assert "scaled_ticks" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert procrastinate_objects(pg_url) == found
    finally:
        engine.dispose()


def test_sqlite_gets_the_schedule_tables_and_nothing_of_procrastinate(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        upgrade(engine)
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"scaled_pipelines", "scaled_ticks"} <= names
    assert not any(n.startswith("procrastinate") for n in names)
