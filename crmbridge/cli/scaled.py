"""``crmbridge worker``: one worker of the scaled runtime (procrastinate on PostgreSQL)."""

from __future__ import annotations

from typing import Annotated

import typer

from crmbridge.cli.app import app, reports_errors
from crmbridge.cli.common import bridge
from crmbridge.errors import ConfigurationError


@app.command()
@reports_errors
def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Jobs run at once (default CRMBRIDGE_SCALED__CONCURRENCY, 4).",
        ),
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            "-q",
            help="Only these queues (comma-separated or repeated): control (dispatch, reap, "
            "cleanup), sync (pipeline cycles), backfill (backfill chunks). Default: all.",
        ),
    ] = None,
) -> None:
    """Run a worker of the scaled runtime until SIGTERM/SIGINT.

    Start any number, on any machines, against the same PostgreSQL store: they share the
    pipelines' cycles (one worker per pipeline at a time) and the chunks of large backfills, and
    fail the jobs of a worker that dies. Needs CRMBRIDGE_RUNTIME=procrastinate.
    """
    b = bridge(ctx)
    if b.settings.runtime != "procrastinate":
        raise ConfigurationError(
            "crmbridge worker runs the scaled runtime, but CRMBRIDGE_RUNTIME is "
            f"{b.settings.runtime}",
            hint="set CRMBRIDGE_RUNTIME=procrastinate (and a PostgreSQL CRMBRIDGE_DATABASE_URL), "
            "or run the embedded daemon with crmbridge run",
        )
    from crmbridge.runtime.scaled.adapter import ScaledRuntime

    ScaledRuntime(b).serve(concurrency=concurrency, queues=queues or ())
