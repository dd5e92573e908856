"""Fixtures for engine tests: a bridge on memory connectors, a fresh world, a temp store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmbridge.app import CrmBridge
from crmbridge.settings import load_settings
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory


class Clock:
    """A clock tests move by hand; starts at the world's now."""

    def __init__(self, world: memory.MemoryWorld) -> None:
        self.world = world

    def __call__(self) -> datetime:
        return self.world.now()

    def advance(self, **kw: float) -> None:
        self.world.advance(timedelta(**kw).total_seconds())


@pytest.fixture
def world() -> memory.MemoryWorld:
    return memory.memory_world(fresh=True)


@pytest.fixture
def clock(world: memory.MemoryWorld) -> Clock:
    return Clock(world)


@pytest.fixture
def make_bridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> Callable[..., CrmBridge]:
    """A bridge on memory connectors with a store in ``tmp_path``; pass extra plugins."""
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__MARKETING", "memory_marketing")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__SALES", "memory_sales")
    for name in ("CRMBRIDGE_DEFINITION", "CRMBRIDGE_PLUGIN_FILE", "CRMBRIDGE_PIPELINES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(Path(__file__).parents[2])

    def make(*plugins: tuple[str, Any], **overrides: Any) -> CrmBridge:
        return CrmBridge(
            load_settings(**overrides),
            entrypoints=False,
            extra_plugins=[("memory", memory), *plugins],
            clock=clock,
        )

    return make


@pytest.fixture
def bridge(make_bridge: Callable[..., CrmBridge]) -> CrmBridge:
    return make_bridge()


@pytest.fixture
def runner(bridge: CrmBridge) -> Iterator[PipelineRunner]:
    r = PipelineRunner(bridge)
    yield r
    r.close()


def mql_contact(email: str, **extra: Any) -> dict[str, Any]:
    """A marketing contact that qualifies as an MQL under the default definition."""
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
        "hs_analytics_num_page_views": 20,
        "hs_email_click": 5,
        "lifecyclestage": "lead",
        **extra,
    }


def now_utc() -> datetime:
    return datetime.now(UTC)
