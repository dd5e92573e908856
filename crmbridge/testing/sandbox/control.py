"""A client of the sandbox control API, the same for a threaded and a subprocess emulator."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from crmbridge.testing.sandbox.calllog import Call, CallLog
from crmbridge.testing.sandbox.faults import FaultRule

# Loopback only, and never through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SandboxControlError(RuntimeError):
    """The control API refused a request; the message is the sandbox's own explanation."""


class SandboxControl:
    """Read the call log, set faults, latency and the clock, seed data and act as a user."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, default=str).encode()
        req = urllib.request.Request(
            f"{self.url}/__sandbox__/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SandboxControlError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "health")
        return result

    def calls(self, since: int = 0) -> CallLog:
        log = CallLog()
        log.extend(Call.from_dict(c) for c in self._request("GET", f"calls?since={since}")["calls"])
        return log

    def reset_calls(self) -> None:
        self._request("DELETE", "calls")

    def set_faults(self, rules: list[FaultRule] | list[dict[str, Any]], seed: int = 0) -> None:
        encoded = [r.to_dict() if isinstance(r, FaultRule) else r for r in rules]
        self._request("PUT", "faults", {"rules": encoded, "seed": seed})

    def clear_faults(self) -> None:
        self.set_faults([])

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        self._request("PUT", "latency", {"ms": ms, "jitter_ms": jitter_ms})

    def advance_clock(self, seconds: float) -> str:
        return str(self.control("advance_clock", seconds=seconds)["now"])

    def save(self) -> None:
        self._request("POST", "save")

    def control(self, action: str, **payload: Any) -> Any:
        """Run an emulator control action (seed data, act as a sales rep or a marketer)."""
        return self._request("POST", f"control/{action}", payload)["result"]
