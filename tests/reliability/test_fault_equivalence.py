"""Fault equivalence: the same scenario with both sandboxes injecting 5 % 5xx, 2 % 429 with a short
``Retry-After``, dropped connections before and after the write, an expired Salesforce session
every 37 calls and partial batch failures ends in a state identical to a clean run's (see
``scenario.py`` for what identical means: both systems and the store, record by record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.scenario import Config, compare, run_scenario

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def test_a_run_under_faults_ends_as_a_clean_run(tmp_path: Path) -> None:
    config = Config(leads=300, seed=11, rounds=2)
    notes: list[str] = []
    clean = run_scenario(tmp_path / "clean", config, log=notes.append)
    faulty = run_scenario(tmp_path / "faults", config, faults=True, log=notes.append)
    difference = compare(clean.state, faulty.state)
    assert difference.identical, difference.summary() + "\n" + difference.details()
    assert difference.compared["salesforce lead"] > 20
    assert difference.compared["store outcomes"] > 20
    fired = faulty.faults
    for kind in ("status", "drop", "drop_after", "partial"):
        assert fired[f"hubspot {kind}"] + fired[f"salesforce {kind}"] > 0, fired
    assert fired["salesforce expire_session"] > 0, fired
