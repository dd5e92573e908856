"""The vendor-neutral sandbox harness, exercised with a tiny emulator over real HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crmbridge.testing.sandbox import (
    Emulator,
    FaultKind,
    FaultRule,
    RollingWindow,
    SandboxProcess,
    SandboxServer,
)


class EchoEmulator(Emulator):
    """Keeps a counter and a list of items; fails batch items when told to."""

    name = "echo"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.items: list[str] = []
        self.sessions_valid = True

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/items", self.list_items)
        app.router.add_post("/items/batch", self.add_items)

    async def list_items(self, request: web.Request) -> web.Response:
        if not self.sessions_valid:
            return web.json_response({"error": "expired"}, status=401)
        self.count_records(request, records_out=len(self.items))
        return web.json_response({"items": self.items})

    async def add_items(self, request: web.Request) -> web.Response:
        body = await request.json()
        fault = self.fault_of(request)
        failed = fault.failed_indexes(len(body)) if fault and fault.kind == "partial" else set()
        results = []
        for i, item in enumerate(body):
            if i in failed:
                results.append({"ok": False})
            else:
                self.items.append(item)
                results.append({"ok": True})
        self.mark_dirty()
        self.count_records(request, records_in=len(body))
        return web.json_response(results)

    def error_response(
        self, status: int, *, retry_after: float | None = None, code: str | None = None
    ) -> web.StreamResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return web.json_response({"error": code or "injected"}, status=status, headers=headers)

    def expire_sessions(self) -> None:
        self.sessions_valid = False

    def snapshot(self) -> dict[str, Any]:
        return {"items": self.items}

    def restore(self, data: Any) -> None:
        self.items = list(data["items"])

    def control_add(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)


def _get(url: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    if body is None:
        conn.request("GET", path)
    else:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data else None, dict(resp.getheaders())


@pytest.fixture
def echo() -> Iterator[SandboxServer]:
    with SandboxServer(EchoEmulator()) as server:
        yield server


def test_call_log_counts_records_and_endpoints(echo: SandboxServer) -> None:
    _get(echo.url, "/items/batch", ["a", "b", "c"])
    _get(echo.url, "/items")
    log = echo.control.calls()
    assert [c.endpoint for c in log] == ["POST /items/batch", "GET /items"]
    assert log.records_in("POST") == 3
    assert [c.records_out for c in log] == [0, 3]
    echo.control.reset_calls()
    assert len(echo.control.calls()) == 0


def test_status_fault_on_exact_call_with_retry_after(echo: SandboxServer) -> None:
    echo.control.set_faults(
        [
            FaultRule(
                kind=FaultKind.STATUS, status=429, retry_after=2, on_calls=(2,), path="^/items$"
            )
        ]
    )
    assert _get(echo.url, "/items")[0] == 200
    status, body, headers = _get(echo.url, "/items")
    assert (status, body, headers["Retry-After"]) == (429, {"error": "injected"}, "2")
    assert _get(echo.url, "/items")[0] == 200
    assert [c.fault for c in echo.control.calls()] == [None, "status", None]


def test_drop_after_performs_the_write_but_loses_the_answer(echo: SandboxServer) -> None:
    echo.control.set_faults([FaultRule(kind=FaultKind.DROP_AFTER, on_calls=(1,))])
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _get(echo.url, "/items/batch", ["x"])
    assert _get(echo.url, "/items")[1] == {"items": ["x"]}


def test_drop_before_loses_the_write(echo: SandboxServer) -> None:
    echo.control.set_faults([FaultRule(kind=FaultKind.DROP, on_calls=(1,))])
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _get(echo.url, "/items/batch", ["x"])
    assert _get(echo.url, "/items")[1] == {"items": []}


def test_partial_fault_is_seeded_and_reproducible(echo: SandboxServer) -> None:
    def run() -> list[bool]:
        echo.control.set_faults(
            [FaultRule(kind=FaultKind.PARTIAL, probability=1.0, fail_share=0.3)], seed=7
        )
        return [r["ok"] for r in _get(echo.url, "/items/batch", list("abcdefghij"))[1]]

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(False) < 10


def test_expire_session_fault(echo: SandboxServer) -> None:
    echo.control.set_faults([FaultRule(kind=FaultKind.EXPIRE_SESSION, on_calls=(1,))])
    assert _get(echo.url, "/items")[0] == 401


def test_probability_fault_with_seed_fires_some_not_all(echo: SandboxServer) -> None:
    echo.control.set_faults([FaultRule(kind=FaultKind.STATUS, status=503, probability=0.2)], seed=3)
    statuses = [_get(echo.url, "/items")[0] for _ in range(100)]
    assert 5 < statuses.count(503) < 40


def test_control_actions_and_errors(echo: SandboxServer) -> None:
    assert echo.control.control("add", item="z") == 1
    with pytest.raises(
        Exception, match="no control action 'nope'; known: \\['add', 'advance_clock'\\]"
    ):
        echo.control.control("nope")
    before = echo.emulator.clock.now()
    echo.control.advance_clock(3600)
    assert (echo.emulator.clock.now() - before).total_seconds() >= 3600


def test_latency_is_applied(echo: SandboxServer) -> None:
    echo.control.set_latency(50)
    _get(echo.url, "/items")
    assert echo.control.calls().snapshot()[-1].latency_ms >= 50


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "echo.json"
    with SandboxServer(EchoEmulator(), state_path=state) as server:
        _get(server.url, "/items/batch", ["kept"])
    with SandboxServer(EchoEmulator(), state_path=state) as server:
        assert _get(server.url, "/items")[1] == {"items": ["kept"]}


def test_subprocess_mode_serves_the_same_api(tmp_path: Path) -> None:
    ref = "tests.testing.test_sandbox_harness:EchoEmulator"
    with SandboxProcess(ref, env={"PYTHONPATH": str(Path(__file__).parents[2])}) as proc:
        _get(proc.url, "/items/batch", ["a"])
        assert proc.control.calls().records_in() == 1


def test_rolling_window_answers_retry_after() -> None:
    now = [0.0]
    window = RollingWindow(2, 10, clock=lambda: now[0])
    assert window.acquire() is None
    assert window.acquire() is None
    assert window.acquire() == pytest.approx(10)
    now[0] = 10.5
    assert window.acquire() is None
    assert window.remaining() == 1


def test_a_client_gone_mid_request_is_logged_as_499_not_as_a_server_error(
    echo: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    address = urlsplit(echo.url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        # A body promised and never sent in full: the process writing it was killed.
        sock.sendall(b'POST /items/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n["a')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while not echo.control.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    [call] = echo.control.calls()
    assert (call.endpoint, call.status) == ("POST /items/batch", 499)
    assert echo.emulator.items == []  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
