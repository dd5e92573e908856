"""One worker process: ``crmbridge worker`` (and ``crmbridge run`` on the scaled runtime).

It runs up to ``concurrency`` jobs at once from the chosen queues, sends a heartbeat every
``heartbeat_seconds``, and takes part in the periodic ``dispatch``, ``reap`` and ``cleanup``
(procrastinate makes sure each period is deferred once, whichever worker gets there first). On
SIGTERM or SIGINT it takes no new job, asks the running ones to stop between batches, waits for
them and leaves; a job stopped that way is queued again for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmbridge.app import CrmBridge
from crmbridge.errors import ConfigurationError
from crmbridge.sync import load_pipelines

from .app import build_app
from .config import ScaledSettings
from .jobs import QUEUES
from .schema import apply_schema, has_schema
from .tasks import Tasks

if TYPE_CHECKING:
    from procrastinate import App

log = logging.getLogger("crmbridge.runtime.scaled")


def check_queues(queues: Sequence[str]) -> list[str]:
    """The queue names given (comma-separated or repeated), each one of :data:`QUEUES`."""
    names = [q.strip() for given in queues for q in given.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise ConfigurationError(
            f"no queue named {', '.join(unknown)}; the queues are {', '.join(QUEUES)}",
            hint="control: dispatch, reap, cleanup; sync: ticks; backfill: backfill chunks",
        )
    return names


def run_worker(
    bridge: CrmBridge,
    scaled: ScaledSettings,
    *,
    concurrency: int | None = None,
    queues: Sequence[str] = (),
    name: str | None = None,
) -> None:
    """Work until SIGTERM or SIGINT."""
    chosen = check_queues(queues)
    pipelines = load_pipelines(bridge.settings)
    stop = threading.Event()
    tasks = Tasks(bridge, scaled, stop=stop)
    with tasks.store.transaction() as conn:
        if not has_schema(conn):
            # The store was migrated where procrastinate was not installed: set it up now.
            apply_schema(conn)
    app = build_app(bridge.settings, scaled, tasks)
    if bridge.settings.log_level != "DEBUG":
        # procrastinate logs every job's start and end; crmbridge logs each cycle already.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
    jobs = concurrency or scaled.concurrency
    options: dict[str, Any] = {
        "queues": chosen or None,
        "concurrency": jobs,
        "name": name or tasks.host_pid,
        "install_signal_handlers": False,
        "update_heartbeat_interval": scaled.heartbeat_seconds,
        "stalled_worker_timeout": scaled.worker_timeout_seconds,
        "delete_jobs": "successful",
        "fetch_job_polling_interval": 1.0,
    }
    if threading.current_thread() is threading.main_thread():
        # The daemon's reload (systemd's ExecReload): a worker loads the lead definition when it
        # starts, so it says what to do instead of dying of the signal.
        signal.signal(signal.SIGHUP, _on_hangup)
    log.info(
        "crmbridge worker %s started: queues %s, %d job(s) at once, %d pipeline(s), dispatch "
        "every %d s, reap after %g s without heartbeat",
        tasks.host_pid,
        ", ".join(chosen or QUEUES),
        jobs,
        len(pipelines),
        scaled.dispatch_seconds,
        scaled.worker_timeout_seconds,
    )
    try:
        asyncio.run(_work(app, options, stop))
    finally:
        tasks.close()
    log.info("crmbridge worker %s stopped cleanly", tasks.host_pid)


def _on_hangup(signum: int, frame: object) -> None:
    log.warning(
        "SIGHUP received: a worker loads the lead definition when it starts; restart the "
        "workers (one at a time) to load a new one. Working on."
    )


async def _work(app: App, options: dict[str, Any], stop: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    async with app.open_async():
        work = asyncio.create_task(app.run_worker_async(**options))

        def on_signal(signum: int) -> None:
            log.info("%s received: stopping between batches", signal.Signals(signum).name)
            stop.set()
            # Cancelling the worker makes it take no new job and wait for the running ones.
            work.cancel()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        with contextlib.suppress(asyncio.CancelledError):
            await work
