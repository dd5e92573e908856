"""Fixtures of the scaled-runtime tests: a PostgreSQL store (``pg_url``, from the root conftest:
skipped without a server, failing under ``CI=true``), pipelines on memory connectors for the
tests that run the tasks in this process, and sandboxes for those that run worker processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.runtime.scaled.config import scaled_settings
from crmbridge.runtime.scaled.tasks import Tasks
from crmbridge.settings import load_settings
from crmbridge.testing import memory

MEMORY_PIPELINE = """\
CRMBRIDGE_PIPELINE__NAME={name}
CRMBRIDGE_PIPELINE__MARKETING=memory_marketing
CRMBRIDGE_PIPELINE__SALES=memory_sales
CRMBRIDGE_PIPELINE__POLL_SECONDS={poll}
CRMBRIDGE_MEMORY_MARKETING__WORLD={world}
CRMBRIDGE_MEMORY_SALES__WORLD={world}
"""


def qualifying(email: str, **extra: object) -> dict[str, object]:
    """A marketing contact the example definition qualifies as an MQL."""
    return {
        "email": email, "firstname": "Grace", "lastname": "Hopper", "company": "Navy Labs",
        "jobtitle": "VP of Engineering", "industry": "Software", "numemployees": "500-1000",
        "country": "US", "lead_source": "webinar", "hs_analytics_num_page_views": 20,
        "hs_email_click": 5, "lifecyclestage": "lead", **extra,
    }  # fmt: skip


@pytest.fixture
def memory_env(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CrmBridge]:
    """A bridge on the scaled runtime whose pipelines (``names``) run on memory worlds of the
    same names, for tests that call the tasks in this process."""

    def make(*names: str, poll: float = 1.0, **extra: str) -> CrmBridge:
        folder = tmp_path / "pipelines"
        folder.mkdir(exist_ok=True)
        for name in names:
            memory.memory_world(name, fresh=True)
            (folder / f"{name}.env").write_text(
                MEMORY_PIPELINE.format(name=name, poll=poll, world=name)
            )
        for key in list(os.environ):
            if key.startswith("CRMBRIDGE_"):
                monkeypatch.delenv(key)
        values = {
            "CRMBRIDGE_DATABASE_URL": pg_url,
            "CRMBRIDGE_RUNTIME": "procrastinate",
            "CRMBRIDGE_DEFINITION": str(default_definition_path()),
            "CRMBRIDGE_PIPELINES_DIR": str(folder),
            "CRMBRIDGE_LEASE_SECONDS": "60",
            "CRMBRIDGE_SCALED__HEARTBEAT_SECONDS": "1",
            "CRMBRIDGE_SCALED__WORKER_TIMEOUT_SECONDS": "3",
            **extra,
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        return CrmBridge(load_settings(), entrypoints=False, extra_plugins=[("memory", memory)])

    return make


@pytest.fixture
def tasks_of() -> Iterator[Callable[[CrmBridge], Tasks]]:
    """The tasks of a worker, run here (closed after the test)."""
    made: list[Tasks] = []

    def make(bridge: CrmBridge) -> Tasks:
        made.append(Tasks(bridge, scaled_settings(bridge.settings)))
        return made[-1]

    yield make
    for tasks in made:
        tasks.close()
        tasks.store.close()
