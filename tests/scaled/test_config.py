"""The scaled runtime's configuration: refused with the variable to fix when it cannot work, the
connection string derived from the store's URL, the plan of a split backfill, the overlap check."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crmbridge.cli import app
from crmbridge.errors import ConfigurationError
from crmbridge.runtime.scaled.app import seconds_cron
from crmbridge.runtime.scaled.backfill import make_plan
from crmbridge.runtime.scaled.config import conninfo, scaled_settings
from crmbridge.runtime.scaled.ledger import TickRecord, overlaps
from crmbridge.runtime.scaled.worker import check_queues
from crmbridge.settings import load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No CRMBRIDGE_* from outside; the scaled runtime on a SQLite store (which it refuses)."""
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CRMBRIDGE_LOAD_PLUGINS", "")
    monkeypatch.setenv("CRMBRIDGE_RUNTIME", "procrastinate")
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    return monkeypatch


def crmbridge(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ["worker"],
        ["run"],
        ["status"],
        ["backfill", "--since", "2026-01-01"],
    ],
    ids=["worker", "run", "status", "backfill"],
)
def test_the_scaled_runtime_refuses_a_store_that_is_not_postgresql(
    env: pytest.MonkeyPatch, args: list[str]
) -> None:
    result = crmbridge(*args)
    assert result.exit_code == 2, result.output
    assert "CRMBRIDGE_RUNTIME=procrastinate needs PostgreSQL, but CRMBRIDGE_DATABASE_URL is " \
        "sqlite:///" in " ".join(result.output.split())  # fmt: skip
    assert "postgresql+psycopg://" in result.output


def test_the_psycopg2_driver_is_refused_by_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRMBRIDGE_DATABASE_URL", "postgresql+psycopg2://crm:secret-pw@db.internal/crm")
    result = crmbridge("worker")
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "needs the psycopg (3) driver, but CRMBRIDGE_DATABASE_URL is" in output
    assert "secret-pw" not in output, "the password is never shown"


def test_worker_on_the_embedded_runtime_is_a_configuration_error(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRMBRIDGE_RUNTIME", "embedded")
    result = crmbridge("worker")
    assert result.exit_code == 2
    assert "crmbridge worker runs the scaled runtime, but CRMBRIDGE_RUNTIME is embedded" in (
        " ".join(result.output.split())
    )


def test_an_unknown_queue_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRMBRIDGE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    result = crmbridge("worker", "--queues", "sync,fast")
    assert result.exit_code == 2
    assert "no queue named fast; the queues are control, sync, backfill" in result.output
    assert check_queues(["sync,backfill", "control"]) == ["sync", "backfill", "control"]


def test_a_worker_timeout_shorter_than_three_heartbeats_is_refused(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("CRMBRIDGE_SCALED__HEARTBEAT_SECONDS", "10")
    env.setenv("CRMBRIDGE_SCALED__WORKER_TIMEOUT_SECONDS", "20")
    with pytest.raises(ConfigurationError) as caught:
        scaled_settings(load_settings())
    assert "CRMBRIDGE_SCALED__WORKER_TIMEOUT_SECONDS (20) must be at least three heartbeats" in (
        str(caught.value)
    )


def test_a_bad_scaled_setting_names_its_variable(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRMBRIDGE_SCALED__DISPATCH_SECONDS", "90")
    with pytest.raises(ConfigurationError) as caught:
        scaled_settings(load_settings())
    assert "CRMBRIDGE_SCALED__DISPATCH_SECONDS" in str(caught.value)


def test_the_connection_string_keeps_the_stores_options() -> None:
    url = "postgresql+psycopg://crm:p%40ss@db.internal:6432/crm?options=-csearch_path%3Dtenant&sslmode=require"
    info = dict(part.split("=", 1) for part in conninfo(url).split())
    assert info == {
        "host": "db.internal",
        "port": "6432",
        "dbname": "crm",
        "user": "crm",
        "password": "p@ss",
        "options": "-csearch_path=tenant",
        "sslmode": "require",
    }


def test_dispatch_and_reap_run_every_few_seconds() -> None:
    import croniter

    times = croniter.croniter(seconds_cron(5), datetime(2026, 1, 1, tzinfo=UTC))
    first, second = times.get_next(datetime), times.get_next(datetime)
    assert (second - first) == timedelta(seconds=5)


def test_a_backfill_is_split_into_contiguous_slices_and_the_same_range_is_the_same_plan() -> None:
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 17, tzinfo=UTC)
    plan = make_plan("emea", since, until, 4, now=until)
    assert [(c.since.day, c.until.day if c.until else None) for c in plan.chunks] == [
        (1, 5), (5, 9), (9, 13), (13, 17),
    ]  # fmt: skip
    assert len({c.id for c in plan.chunks}) == 4
    assert make_plan("emea", since, until, 4, now=until + timedelta(days=3)) == plan
    assert make_plan("emea", since, until, 8, now=until).id != plan.id
    open_ended = make_plan("emea", since, None, 4, now=until)
    assert open_ended.chunks[-1].until is None, "records changed meanwhile are in the last slice"
    assert make_plan("emea", until, None, 4, now=since).chunks[0].until is None


def test_the_overlap_check_finds_two_ticks_of_one_pipeline_at_once() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def tick(n: int, pipeline: str, start: float, end: float | None) -> TickRecord:
        return TickRecord(
            n, pipeline, "tick", n, None, "w", None,
            at + timedelta(seconds=start),
            None if end is None else at + timedelta(seconds=end),
            "ok",
        )  # fmt: skip

    apart = [tick(1, "a", 0, 1), tick(2, "a", 1.5, 3), tick(3, "b", 0.5, 2)]
    assert overlaps(apart) == []
    assert overlaps([*apart, tick(4, "a", 2.5, 4)]) == [(apart[1], tick(4, "a", 2.5, 4))]
    assert len(overlaps([tick(1, "a", 0, None), tick(2, "a", 5, 6)])) == 1
