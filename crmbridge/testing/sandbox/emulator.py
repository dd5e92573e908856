"""The base class every vendor emulator derives from.

An emulator is an aiohttp application (its routes), a state it keeps in memory (optionally saved to
a file), and the vendor-specific answers the harness needs: the error body for an injected status,
what "expire every session" means, the env entries that point a connector at it. Seeding and acting
(a sales rep converting a lead, a marketer submitting a form) are *control actions*: methods named
``control_<action>`` that the harness exposes at ``POST /__sandbox__/control/<action>``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from crmbridge.testing.sandbox.clock import SandboxClock
from crmbridge.testing.sandbox.faults import Fault

RECORDS_IN = web.RequestKey("records_in", int)
RECORDS_OUT = web.RequestKey("records_out", int)
FAULT = web.RequestKey("sandbox_fault", Fault)


class ControlError(Exception):
    """A control action was asked for with arguments it cannot use (answered with HTTP 400)."""


class Emulator(abc.ABC):
    """A vendor API emulator served by :class:`~crmbridge.testing.sandbox.server.SandboxServer`.

    Subclasses set ``name`` (the lead definition's system key, e.g. ``"salesforce"``) and
    ``label``, add their routes in :meth:`add_routes`, and answer :meth:`error_response`.
    """

    name: ClassVar[str]
    label: ClassVar[str] = ""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.clock = SandboxClock()
        self.dirty = False

    # -- what every emulator answers ------------------------------------------------------------

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add the vendor API's routes to ``app``."""

    @abc.abstractmethod
    def error_response(
        self, status: int, *, retry_after: float | None = None, code: str | None = None
    ) -> web.StreamResponse:
        """The response the vendor gives for ``status`` (an injected fault), in its own shape."""

    def expire_sessions(self) -> None:  # noqa: B027 - optional for emulators without sessions
        """Invalidate every issued session or token (the EXPIRE_SESSION fault)."""

    def endpoint_of(self, request: web.Request) -> str:
        """A short canonical name for the request's route, used by the call log."""
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        return f"{request.method} {canonical}"

    def env(self, base_url: str) -> dict[str, str]:
        """Env entries (``CRMBRIDGE_...``) that point this vendor's connector at ``base_url``."""
        return {}

    # -- state ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The emulator's state as JSON-able data (saved when the sandbox has a state file)."""
        return {}

    def restore(self, data: Mapping[str, Any]) -> None:  # noqa: B027 - stateless by default
        """Load a state written by :meth:`snapshot`."""

    def mark_dirty(self) -> None:
        self.dirty = True

    # -- control actions ------------------------------------------------------------------------

    def control(self, action: str, payload: Mapping[str, Any]) -> Any:
        """Run the control action ``action`` (a method ``control_<action>``) with ``payload``."""
        method: Callable[..., Any] | None = getattr(self, f"control_{action}", None)
        if method is None or not action.replace("_", "").isalnum():
            known = sorted(n[len("control_") :] for n in dir(self) if n.startswith("control_"))
            raise ControlError(
                f"{self.name} sandbox has no control action {action!r}; known: {known}"
            )
        try:
            return method(**payload)
        except TypeError as exc:
            raise ControlError(f"{self.name} sandbox action {action!r}: {exc}") from exc

    def control_advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move this emulator's clock forward by ``seconds``."""
        return {"now": self.clock.advance(seconds).isoformat()}

    # -- faults that need the vendor's help -----------------------------------------------------

    @staticmethod
    def fault_of(request: web.Request) -> Fault | None:
        """The fault the harness attached to this request, if any (PARTIAL is read by handlers)."""
        return request.get(FAULT)

    @staticmethod
    def count_records(request: web.Request, *, records_in: int = 0, records_out: int = 0) -> None:
        """Tell the call log how many records this request carried and returned."""
        request[RECORDS_IN] = records_in
        request[RECORDS_OUT] = records_out
