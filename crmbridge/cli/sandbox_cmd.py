"""``crmbridge sandbox``: every installed vendor emulator on loopback, seeded with messy demo
data, and an env file that points the connectors at them — no account needed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from crmbridge.cli.app import app, console, fail, reports_errors
from crmbridge.cli.common import bridge
from crmbridge.plugins import sandbox_classes
from crmbridge.testing.sandbox import Emulator, FaultKind, FaultRule, SandboxProcess


class Sandboxes:
    """Running emulators (one process each) and what they answer to."""

    def __init__(self) -> None:
        self.running: dict[str, SandboxProcess] = {}
        self.classes: dict[str, type[Emulator]] = {}

    def start(
        self,
        classes: dict[str, type[Emulator]],
        *,
        options: dict[str, dict[str, Any]] | None = None,
        latency_ms: float = 0.0,
        state_dir: Path | None = None,
    ) -> Sandboxes:
        for name, cls in sorted(classes.items()):
            state = (state_dir / f"{name}.json") if state_dir else None
            proc = SandboxProcess(
                cls, options=(options or {}).get(name, {}), latency_ms=latency_ms, state_path=state
            )
            self.running[name] = proc.start()
            self.classes[name] = cls
        return self

    def env(self, options: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
        """The env entries pointing every connector at its sandbox."""
        out: dict[str, str] = {}
        for name, proc in self.running.items():
            out.update(self.classes[name]((options or {}).get(name, {})).env(proc.url))
        return out

    def stop(self) -> None:
        for proc in self.running.values():
            proc.stop()
        self.running.clear()


def fault_rules(rate: float) -> list[FaultRule]:
    """The demo's background noise: 5xx and 429-with-Retry-After at ``rate`` (split 3:1)."""
    if rate <= 0:
        return []
    return [
        FaultRule(kind=FaultKind.STATUS, status=503, probability=min(1.0, rate * 0.75)),
        FaultRule(
            kind=FaultKind.STATUS, status=429, retry_after=1, probability=min(1.0, rate * 0.25)
        ),
    ]


def write_env(path: Path, entries: dict[str, str], extra: dict[str, str] | None = None) -> None:
    lines = ["# written by `crmbridge sandbox`: the connectors talk to local emulators"]
    lines += [f"{k}={v}" for k, v in {**entries, **(extra or {})}.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


@app.command()
@reports_errors
def sandbox(
    ctx: typer.Context,
    env_out: Annotated[
        Path | None, typer.Option("--env-out", help="Write an env file here.")
    ] = None,
    leads: Annotated[int, typer.Option(help="Demo leads to seed.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the demo data (same seed, same data).")] = 42,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Share of calls answered 5xx/429 (0 to 1).")
    ] = 0.0,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added to every call.")] = 0.0,
    tier: Annotated[str, typer.Option(help="HubSpot tier: starter, professional, enterprise.")] = (
        "professional"
    ),
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Keep the sandboxes' state here.")
    ] = None,
) -> None:
    """Run the sandbox emulators with seeded demo data until interrupted."""
    b = bridge(ctx)
    classes = sandbox_classes(b.pm)
    if not classes:
        fail("no sandbox is installed", hint="install crmbridge-hubspot and crmbridge-salesforce")
    if not 0 <= fault_rate <= 1:
        fail("--fault-rate must be between 0 and 1")
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    options = {"hubspot": {"tier": tier}}
    started = time.monotonic()
    boxes = Sandboxes().start(classes, options=options, latency_ms=latency_ms, state_dir=state_dir)
    try:
        for name, proc in boxes.running.items():
            counts = proc.control.control("seed_demo", count=leads, seed=seed)
            proc.control.set_faults(fault_rules(fault_rate), seed=seed)
            console.print(f"{name} sandbox on {proc.url}  seeded: {counts}", highlight=False)
        entries = boxes.env(options)
        if env_out is not None:
            write_env(env_out, entries)
            console.print(f"wrote {env_out}: crmbridge --env-file {env_out} check", highlight=False)
        console.print(
            f"ready in {time.monotonic() - started:.1f} s; Ctrl-C to stop", highlight=False
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        boxes.stop()


@app.command()
@reports_errors
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo keeps its store, env file and report.")
    ] = Path(".crmbridge/demo"),
    duration: Annotated[float, typer.Option(help="Real seconds to run.")] = 100.0,
    leads: Annotated[int, typer.Option(help="Demo leads to seed in each sandbox.")] = 300,
    seed: Annotated[
        int, typer.Option(help="Seed of the demo data and of the simulated teams.")
    ] = 42,
    speed: Annotated[float, typer.Option(help="How much faster demo time runs.")] = 120.0,
) -> None:
    """The live demo: sandboxes with demo data, the daemon, a simulated sales team, the report."""
    from crmbridge.demo import run_demo

    run_demo(workdir, duration=duration, leads=leads, seed=seed, speed=speed, console=console)
