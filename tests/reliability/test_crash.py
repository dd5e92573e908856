"""Crash safety, the short version of ``scripts/crash_test.py``: a backfill and steady-state syncs
killed with SIGKILL at seeded moments, restarted each time, end exactly where a clean run of the
same seed ends — nothing lost, nothing duplicated, every verdict written back once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def test_killed_runs_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    args = ["--leads", "400", "--kills", "4", "--rounds", "2", "--seed", "7"]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "crash_test.py"),
            *args,
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "4 kills landed (0 missed)" in output
    assert "\n0 lost, 0 duplicated\n" in output
    assert ": 0 lost, 0 duplicated, 0 changed" in output
