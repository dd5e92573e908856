"""Fixtures shared by every test folder: the state store on SQLite and on PostgreSQL.

``store_url`` runs a test once per backend. The PostgreSQL one uses the server named by
``CRMBRIDGE_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
with a fresh schema per test (the URL sets ``search_path`` through libpq's ``options``) that is
dropped afterwards. Without a reachable server those tests are skipped, except when ``CI=true``:
there they fail, so a broken database service cannot turn the suite silently green.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_server_url() -> str:
    """The PostgreSQL server the tests may use (``CRMBRIDGE_TEST_POSTGRES_URL``)."""
    return os.environ.get("CRMBRIDGE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _postgres_unavailable(reason: str) -> NoReturn:
    """Skip, or fail when ``CI=true``: CI must never skip the PostgreSQL tests silently."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[Engine | str]:
    """An engine on the test server, or the reason it cannot be used (checked once a session)."""
    url = postgres_server_url()
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield f"psycopg is not installed, so PostgreSQL at {shown} cannot be used"
        return
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        first_line = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        yield (
            f"PostgreSQL at {shown} is not reachable ({first_line}); set "
            "CRMBRIDGE_TEST_POSTGRES_URL to a server the tests may create schemas in"
        )
        return
    yield engine
    engine.dispose()


def fresh_schema_url(server: Engine | str) -> Iterator[str]:
    """A PostgreSQL URL whose connections see only a fresh, empty schema (dropped after); skips,
    or fails under ``CI=true``, when the server is not reachable."""
    if isinstance(server, str):
        _postgres_unavailable(server)
    schema = f"crmbridge_test_{uuid.uuid4().hex[:12]}"
    with server.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_server_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with server.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_url(_postgres_server: Engine | str) -> Iterator[str]:
    """A PostgreSQL URL whose connections see only a fresh, empty schema (dropped after)."""
    yield from fresh_schema_url(_postgres_server)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crmbridge.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url
