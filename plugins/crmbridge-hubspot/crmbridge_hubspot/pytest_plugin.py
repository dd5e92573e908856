"""pytest fixtures for the HubSpot sandbox (entry point ``pytest11``).

``hubspot_sandbox`` serves a fresh emulated portal per test, on a loopback port in a thread, with
a ready SDK client::

    def test_it(hubspot_sandbox):
        hubspot_sandbox.control.control("seed_demo", count=200)
        page = hubspot_sandbox.client.crm.contacts.basic_api.get_page(limit=100)

Emulator options come from ``@pytest.mark.hubspot_sandbox(tier="starter", ...)`` or from
``hubspot_sandbox_factory(**options)``, which may be called several times per test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hubspot
import pytest
from urllib3.util import Retry

from crmbridge.testing.sandbox import CallLog, FaultRule, SandboxControl, SandboxServer
from crmbridge_hubspot.sandbox import HubSpotEmulator

MARKER = "hubspot_sandbox"


def no_retry() -> Retry:
    """urllib3 retries switched off entirely: every HubSpot error reaches the caller as an
    ``ApiException`` at once (no hidden sleeps on ``Retry-After``, no ``MaxRetryError``)."""
    return Retry(total=0, respect_retry_after_header=False, raise_on_status=False)


@dataclass
class HubSpotSandbox:
    """One emulated HubSpot portal served for a test.

    ``server`` is the :class:`SandboxServer`, ``emulator`` the :class:`HubSpotEmulator` in it
    (readable directly), ``control`` seeds data and acts as people, ``client`` is the real SDK
    pointed at ``url`` with the portal's first token.
    """

    server: SandboxServer
    token: str
    client: Any = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.new_client()

    @property
    def url(self) -> str:
        """The portal's base URL (the SDK's ``host``)."""
        return self.server.url

    @property
    def emulator(self) -> HubSpotEmulator:
        """The emulator object itself, for reading its state in a test."""
        emulator = self.server.emulator
        assert isinstance(emulator, HubSpotEmulator)
        return emulator

    @property
    def control(self) -> SandboxControl:
        """The sandbox control client: seed data, act as people, faults, clock."""
        return self.server.control

    def calls(self) -> CallLog:
        """The log of every API call the portal answered (control calls are not in it)."""
        return self.server.call_log

    def new_client(self, token: str | None = None, retry: Retry | None = None) -> Any:
        """Another SDK client for this portal (another token, or urllib3 retries of your own)."""
        return hubspot.Client.create(
            access_token=token or self.token, host=self.url, retry=retry or no_retry()
        )

    def set_faults(self, rules: list[FaultRule] | list[dict[str, Any]], seed: int = 0) -> None:
        """Inject faults (see :class:`crmbridge.testing.sandbox.FaultRule`)."""
        self.control.set_faults(rules, seed)

    def env(self) -> dict[str, str]:
        """Env entries pointing the HubSpot connector at this portal."""
        return self.emulator.env(self.url)


SandboxFactory = Callable[..., HubSpotSandbox]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``hubspot_sandbox`` marker (pytest runs with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers", f"{MARKER}(**options): HubSpot emulator options for the hubspot_sandbox fixture"
    )


@pytest.fixture
def hubspot_sandbox_factory() -> Iterator[SandboxFactory]:
    """Start HubSpot portals with the given emulator options; all stop after the test.

    ``factory(state_path=None, **options)``: ``state_path`` keeps the portal's state in a file
    across restarts; ``options`` are :class:`~crmbridge_hubspot.sandbox.HubSpotOptions` fields.
    """
    started: list[SandboxServer] = []

    def factory(state_path: str | os.PathLike[str] | None = None, **options: Any) -> HubSpotSandbox:
        emulator = HubSpotEmulator(options)
        server = SandboxServer(emulator, state_path=state_path).start()
        started.append(server)
        return HubSpotSandbox(server, emulator.settings.tokens[0])

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def hubspot_sandbox(
    request: pytest.FixtureRequest, hubspot_sandbox_factory: SandboxFactory
) -> HubSpotSandbox:
    """A fresh HubSpot portal for this test (options from ``@pytest.mark.hubspot_sandbox``)."""
    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    return hubspot_sandbox_factory(**options)
