"""``python -m crmbridge.testing.sandbox``: serve one emulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiohttp import web

from crmbridge.testing.sandbox.server import SandboxApp, _bind, load_emulator_class


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crmbridge.testing.sandbox")
    parser.add_argument("--emulator", required=True, help="package.module:Class")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--options", default="{}", help="JSON options for the emulator")
    parser.add_argument("--state", default=None, help="file that keeps the state across restarts")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    emulator = load_emulator_class(args.emulator)(json.loads(args.options))
    sandbox = SandboxApp(emulator, state_path=args.state, latency_ms=args.latency_ms)
    asyncio.run(_serve(sandbox, args.host, args.port))
    return 0


async def _serve(sandbox: SandboxApp, host: str, port: int) -> None:
    sock = _bind(host, port)
    runner = web.AppRunner(sandbox.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host_, port_ = sock.getsockname()[:2]
    print(f"READY http://{host_}:{port_}", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
