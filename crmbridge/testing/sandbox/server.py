"""Serving an emulator on a loopback port: in a thread of this process, or in a subprocess.

Both ways expose the same control API under ``/__sandbox__/`` (call log, faults, latency, clock,
control actions, save), read through :class:`SandboxControl`, so a test or a benchmark drives an
emulator the same way wherever it runs. Control requests are neither logged nor rate limited nor
subject to faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox.calllog import Call, CallLog
from crmbridge.testing.sandbox.control import SandboxControl
from crmbridge.testing.sandbox.emulator import (
    FAULT,
    RECORDS_IN,
    RECORDS_OUT,
    ControlError,
    Emulator,
)
from crmbridge.testing.sandbox.faults import FaultKind, FaultPlan, FaultRule

CONTROL_PREFIX = "/__sandbox__/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_emulator_class(ref: str) -> type[Emulator]:
    """Import ``"package.module:Class"`` and check that it is an :class:`Emulator`."""
    module_name, _, class_name = ref.partition(":")
    if not class_name:
        raise ValueError(f"emulator reference {ref!r} must look like 'package.module:Class'")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Emulator)):
        raise TypeError(f"{ref} is not a crmbridge.testing.sandbox.Emulator subclass")
    return cls


def emulator_ref(cls: type[Emulator]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class SandboxApp:
    """The aiohttp application around one emulator: middleware, control routes, persistence."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        state_path: str | os.PathLike[str] | None = None,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        faults: FaultPlan | None = None,
        autosave_seconds: float = 5.0,
    ) -> None:
        self.emulator = emulator
        self.call_log = CallLog()
        self.faults = faults or FaultPlan()
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self._jitter = random.Random(0)
        self.state_path = Path(state_path) if state_path else None
        self.autosave_seconds = autosave_seconds
        self._autosave: asyncio.Task[None] | None = None
        if self.state_path and self.state_path.exists():
            emulator.restore(json.loads(self.state_path.read_text(encoding="utf-8")))
        self.app = web.Application(middlewares=[self._middleware], client_max_size=512 * 1024**2)
        self._add_control_routes()
        emulator.add_routes(self.app)
        self.app.on_startup.append(self._start_autosave)
        self.app.on_cleanup.append(self._stop_autosave)

    # -- persistence ----------------------------------------------------------------------------

    def save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(self.emulator.snapshot()), encoding="utf-8")
        os.replace(tmp, self.state_path)
        self.emulator.dirty = False

    async def _start_autosave(self, _app: web.Application) -> None:
        if self.state_path is not None:
            self._autosave = asyncio.get_running_loop().create_task(self._autosave_loop())

    async def _autosave_loop(self) -> None:
        while True:
            await asyncio.sleep(self.autosave_seconds)
            if self.emulator.dirty:
                self.save()

    async def _stop_autosave(self, _app: web.Application) -> None:
        if self._autosave is not None:
            self._autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autosave
        self.save()

    # -- the middleware: call log, latency, faults ---------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        n = self.call_log.next_number()
        started = time.perf_counter()
        fault = self.faults.pick(request.method, request.path)
        status = 0
        try:
            delay = self.latency_ms + (
                self._jitter.uniform(0, self.jitter_ms) if self.jitter_ms else 0
            )
            if fault is not None and fault.kind is FaultKind.DELAY:
                delay += fault.rule.delay_ms
            if delay:
                await asyncio.sleep(delay / 1000.0)
            if fault is not None and fault.kind is FaultKind.DROP:
                _drop(request)
            if fault is not None and fault.kind is FaultKind.STATUS:
                response: web.StreamResponse = self.emulator.error_response(
                    fault.rule.status, retry_after=fault.rule.retry_after, code=fault.rule.code
                )
            else:
                if fault is not None and fault.kind is FaultKind.EXPIRE_SESSION:
                    self.emulator.expire_sessions()
                if fault is not None:
                    request[FAULT] = fault
                try:
                    response = await handler(request)
                except web.HTTPException as exc:
                    response = exc
                except ConnectionResetError:
                    # The client went away while its request was read (a killed process): logged
                    # as nginx's 499, not as a server error with a traceback.
                    response = web.Response(status=499, text="client closed the connection")
                if fault is not None and fault.kind is FaultKind.DROP_AFTER:
                    _drop(request)
            status = response.status
            return response
        finally:
            self.call_log.append(
                Call(
                    n=n,
                    method=request.method,
                    path=request.path,
                    endpoint=self.emulator.endpoint_of(request),
                    status=status,
                    latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
                    records_in=request.get(RECORDS_IN, 0),
                    records_out=request.get(RECORDS_OUT, 0),
                    fault=str(fault.kind) if fault is not None else None,
                    at=time.time(),
                )
            )

    # -- control routes -------------------------------------------------------------------------

    def _add_control_routes(self) -> None:
        p = CONTROL_PREFIX
        self.app.router.add_get(p + "health", self._health)
        self.app.router.add_get(p + "calls", self._calls)
        self.app.router.add_delete(p + "calls", self._reset_calls)
        self.app.router.add_get(p + "faults", self._get_faults)
        self.app.router.add_put(p + "faults", self._put_faults)
        self.app.router.add_put(p + "latency", self._put_latency)
        self.app.router.add_post(p + "save", self._save)
        self.app.router.add_post(p + "control/{action}", self._control)

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "emulator": self.emulator.name,
                "ok": True,
                "now": self.emulator.clock.now().isoformat(),
            }
        )

    async def _calls(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        calls = [c.to_dict() for c in self.call_log.snapshot() if c.n > since]
        return web.json_response({"calls": calls})

    async def _reset_calls(self, _request: web.Request) -> web.Response:
        self.call_log.reset()
        return web.json_response({"ok": True})

    async def _get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_dict())

    async def _put_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            rules = [FaultRule.from_dict(r) for r in body.get("rules", [])]
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad fault rule: {exc}"}, status=400)
        self.faults.replace(rules, seed=body.get("seed"))
        return web.json_response(self.faults.to_dict())

    async def _put_latency(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.latency_ms = float(body.get("ms", 0.0))
        self.jitter_ms = float(body.get("jitter_ms", 0.0))
        return web.json_response({"ms": self.latency_ms, "jitter_ms": self.jitter_ms})

    async def _save(self, _request: web.Request) -> web.Response:
        self.save()
        return web.json_response({"saved": str(self.state_path) if self.state_path else None})

    async def _control(self, request: web.Request) -> web.Response:
        payload = await request.json() if request.can_read_body else {}
        try:
            result = self.emulator.control(request.match_info["action"], payload or {})
        except ControlError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"result": result}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """An emulator served from a thread of this process, on a loopback port (ephemeral by default).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``control`` drives it over
    HTTP; ``emulator`` and ``call_log`` may be read directly in tests.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: str | os.PathLike[str] | None = None,
        latency_ms: float = 0.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.sandbox_app = SandboxApp(
            emulator, state_path=state_path, latency_ms=latency_ms, faults=faults
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def call_log(self) -> CallLog:
        return self.sandbox_app.call_log

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control(self) -> SandboxControl:
        return SandboxControl(self.url)

    def start(self) -> SandboxServer:
        if self._thread is not None:
            return self
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
                sock.close()
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(
            target=run, name=f"sandbox-{self.emulator.name}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"the {self.emulator.name} sandbox did not start within 10 s")
        if failure:
            self._thread.join()
            self._loop = self._thread = None
            raise RuntimeError(f"the {self.emulator.name} sandbox failed to start") from failure[0]
        return self

    async def _serve(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(
            self.sandbox_app.app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None
        self._runner = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SandboxProcess:
    """An emulator served by a child Python process (``python -m crmbridge.testing.sandbox``).

    Keeps the emulator off this process's interpreter lock, which matters for benchmarks.
    """

    def __init__(
        self,
        emulator: str | type[Emulator],
        *,
        options: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: str | os.PathLike[str] | None = None,
        latency_ms: float = 0.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.ref = emulator if isinstance(emulator, str) else emulator_ref(emulator)
        self.options = dict(options or {})
        self.host = host
        self.port = port
        self.state_path = state_path
        self.latency_ms = latency_ms
        self.env = dict(env or {})
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    @property
    def control(self) -> SandboxControl:
        return SandboxControl(self.url)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        args = [
            sys.executable, "-m", "crmbridge.testing.sandbox",
            "--emulator", self.ref,
            "--host", self.host,
            "--port", str(self.port),
            "--options", json.dumps(self.options),
            "--latency-ms", str(self.latency_ms),
        ]  # fmt: skip
        if self.state_path:
            args += ["--state", str(self.state_path)]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, text=True, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + timeout
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"sandbox {self.ref} failed to start: {line.strip() or 'no output'}")
        self.url = line.split()[1]
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.control.health()
                return self
            time.sleep(0.05)
        raise RuntimeError(f"sandbox {self.ref} did not answer at {self.url}")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
