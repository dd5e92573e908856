"""pytest fixtures for the Salesforce sandbox (entry point ``pytest11``).

``salesforce_sandbox`` starts an emulator in a thread of the test process for one test and hands
over a :class:`SalesforceSandbox`: its server and URL, the emulator itself, a control client, the
call log, and a simple-salesforce client already logged in (OAuth client credentials through
:func:`~crmbridge_salesforce.transport.sandbox_session`). ``salesforce_sandbox_factory`` starts
emulators with options (``factory(daily_api_limit=50)``) and stops them all after the test;
``@pytest.mark.salesforce_sandbox(**options)`` gives ``salesforce_sandbox`` options too::

    @pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True)
    def test_it(salesforce_sandbox):
        salesforce_sandbox.control.control("seed_demo", count=200)
        leads = salesforce_sandbox.sf.query_all("SELECT Id, Email FROM Lead")["records"]

Heavy imports wait for a fixture to be used, so merely having the plugin installed costs a test
session nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import requests
    from simple_salesforce.api import Salesforce

    from crmbridge.testing.sandbox import CallLog, FaultRule, SandboxControl, SandboxServer
    from crmbridge_salesforce.sandbox import SalesforceEmulator

SANDBOX_DOMAIN = "crmbridge-sandbox.my"
MARKER = "salesforce_sandbox"


class SalesforceSandbox:
    """A running Salesforce emulator and the ways a test reaches it."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        """The emulator's plain-HTTP base URL (``http://127.0.0.1:<port>``)."""
        return self.server.url

    @property
    def emulator(self) -> SalesforceEmulator:
        """The emulator object itself, for reading its state in a test."""
        from crmbridge_salesforce.sandbox import SalesforceEmulator

        emulator = self.server.emulator
        assert isinstance(emulator, SalesforceEmulator)
        return emulator

    @property
    def control(self) -> SandboxControl:
        """Seed data, act as a sales rep, set faults and the clock (the harness control API)."""
        return self.server.control

    def calls(self, since: int = 0) -> CallLog:
        """The calls the emulator answered (after call number ``since``); control calls are not
        in it."""
        from crmbridge.testing.sandbox import CallLog

        log = CallLog()
        log.extend(c for c in self.server.call_log if c.n > since)
        return log

    def set_faults(self, rules: list[FaultRule] | list[dict[str, Any]], seed: int = 0) -> None:
        """Inject faults (see :class:`crmbridge.testing.sandbox.FaultRule`)."""
        self.control.set_faults(rules, seed)

    def env(self) -> dict[str, str]:
        """Env entries pointing the Salesforce connector at this sandbox."""
        return self.emulator.env(self.url)

    def session(self, timeout: float | tuple[float, float] = (5.0, 60.0)) -> requests.Session:
        """A ``requests`` session whose HTTPS calls reach this emulator."""
        from crmbridge_salesforce.transport import sandbox_session

        return sandbox_session(self.url, timeout=timeout)

    def credentials(self) -> dict[str, str]:
        """The default connected app's client-credentials login arguments."""
        key, secret = next(iter(self.emulator.config.clients.items()))
        return {"consumer_key": key, "consumer_secret": secret, "domain": SANDBOX_DOMAIN}

    def make_client(self, **auth: Any) -> Salesforce:
        """A simple-salesforce client logged in with ``auth`` (client credentials by default).

        Any ``Salesforce`` keyword works (``username``/``password``/``security_token`` for SOAP,
        ``privatekey`` for JWT, ``session_id``/``instance_url`` for direct access); ``session``
        and ``version`` default to this sandbox's.
        """
        from simple_salesforce.api import Salesforce

        arguments: dict[str, Any] = dict(auth) if auth else dict(self.credentials())
        arguments.setdefault("session", self.session())
        arguments.setdefault("version", self.emulator.config.api_version)
        return Salesforce(**arguments)

    @functools.cached_property
    def sf(self) -> Salesforce:
        """A client logged in through OAuth client credentials (made on first use)."""
        return self.make_client()


def _start(options: Mapping[str, Any] | None, state_path: str | os.PathLike[str] | None) -> Any:
    from crmbridge.testing.sandbox import SandboxServer
    from crmbridge_salesforce.sandbox import SalesforceEmulator

    return SandboxServer(SalesforceEmulator(options), state_path=state_path).start()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``salesforce_sandbox`` marker (pytest runs with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): Salesforce emulator options for the salesforce_sandbox fixture",
    )


@pytest.fixture
def salesforce_sandbox_factory() -> Iterator[Callable[..., SalesforceSandbox]]:
    """Start Salesforce emulators: ``factory(options=None, *, state_path=None, **options)``.

    Keyword options are merged into ``options``; every sandbox started stops after the test.
    """
    started: list[SalesforceSandbox] = []

    def factory(
        options: Mapping[str, Any] | None = None,
        *,
        state_path: str | os.PathLike[str] | None = None,
        **more: Any,
    ) -> SalesforceSandbox:
        sandbox = SalesforceSandbox(_start({**(options or {}), **more}, state_path))
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in reversed(started):
        sandbox.server.stop()


@pytest.fixture
def salesforce_sandbox(
    request: pytest.FixtureRequest,
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> SalesforceSandbox:
    """A Salesforce emulator for one test (options from ``@pytest.mark.salesforce_sandbox``)."""
    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    return salesforce_sandbox_factory(options)
