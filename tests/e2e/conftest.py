"""End to end: the HubSpot sandbox, the engine, the Salesforce sandbox, through the real SDKs.

``loop`` gives a pipeline runner on both sandboxes with a store in ``tmp_path`` and a clock that
moves together with both emulators' clocks (``loop.advance(hours=25)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmbridge.app import CrmBridge
from crmbridge.settings import load_settings
from crmbridge.sync import CycleResult, PipelineRunner

ROOT = Path(__file__).resolve().parents[2]


class SharedClock:
    """crmbridge's clock, moved forward together with the emulators' clocks."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Loop:
    """Both sandboxes and a runner on them."""

    hubspot: Any
    salesforce: Any
    bridge: CrmBridge
    clock: SharedClock
    plugins: list[tuple[str, Any]] = field(default_factory=list)
    _runner: PipelineRunner | None = None

    @property
    def runner(self) -> PipelineRunner:
        if self._runner is None:
            self._runner = PipelineRunner(self.bridge)
        return self._runner

    def cycle(self, *, dry_run: bool = False) -> CycleResult:
        result = self.runner.run_cycle(dry_run=dry_run)
        assert result.status == "ok", f"{result.status}: {result.error}"
        return result

    def advance(self, **delta: float) -> None:
        seconds = timedelta(**delta).total_seconds()
        self.clock.offset += timedelta(seconds=seconds)
        for sandbox in (self.hubspot, self.salesforce):
            sandbox.control.advance_clock(seconds)

    def contact(self, email: str) -> dict[str, Any]:
        """A HubSpot contact's properties, as a person in HubSpot sees them."""
        found: dict[str, Any] = self.hubspot.control.control("get_contact", email=email)
        return dict(found["properties"])

    def sf_leads(self, email: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.salesforce.control.control("find_leads", email=email)
        return found

    def writes(self) -> int:
        """Write calls both systems answered so far (reads left out)."""
        hs = [c for c in self.hubspot.calls() if c.method in ("POST", "PATCH", "DELETE")]
        hs = [c for c in hs if "search" not in c.endpoint and "batch/read" not in c.endpoint]
        sf = [c for c in self.salesforce.calls() if c.method in ("POST", "PATCH", "DELETE")]
        sf = [c for c in sf if "oauth2" not in c.endpoint and "jobs/query" not in c.endpoint]
        return len(hs) + len(sf)


@pytest.fixture
def loop(
    hubspot_sandbox: Any,
    salesforce_sandbox: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Loop]:
    monkeypatch.chdir(ROOT)
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    env = {
        **hubspot_sandbox.env(),
        **salesforce_sandbox.env(),
        "CRMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CRMBRIDGE_LOAD_PLUGINS": "hubspot,salesforce",
        "CRMBRIDGE_HUBSPOT__LOOKBACK_SECONDS": "5",
        "CRMBRIDGE_SALESFORCE__LOOKBACK_SECONDS": "5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clock = SharedClock()
    bridge = CrmBridge(load_settings(), clock=clock)
    for name in ("hubspot", "salesforce"):
        with bridge.connector(name) as connector:
            connector.setup()
    state = Loop(hubspot_sandbox, salesforce_sandbox, bridge, clock)
    yield state
    if state._runner is not None:
        state._runner.close()


def mql(email: str, **extra: Any) -> dict[str, Any]:
    """A HubSpot contact that qualifies as an MQL under the default definition."""
    return {
        "email": email,
        "firstname": "Grace",
        "lastname": "Hopper",
        "company": "Navy Labs",
        "jobtitle": "VP of Engineering",
        "industry": "Software",
        "numemployees": "500-1000",
        "country": "US",
        "lead_source": "webinar",
        "lifecyclestage": "lead",
        **extra,
    }
