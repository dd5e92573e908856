"""The procrastinate App of a worker: its connector (the store's own PostgreSQL, the same
``search_path``), crmbridge's tasks, their queues, locks and schedules.

Every task is synchronous and runs in a thread of the worker (procrastinate runs sync tasks off
its event loop), so a long cycle never delays the worker's heartbeat. None is ever retried by
procrastinate: see :mod:`crmbridge.runtime.scaled.jobs` for the locks and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmbridge.settings import Settings

from .config import ScaledSettings, conninfo
from .jobs import (
    BACKFILL_CHUNK,
    BACKFILL_FINISH,
    CLEANUP,
    CONTROL_PRIORITY,
    DISPATCH,
    QUEUE_BACKFILL,
    QUEUE_CONTROL,
    QUEUE_SYNC,
    REAP,
    TICK,
)

if TYPE_CHECKING:
    from procrastinate import App, JobContext

    from .tasks import Tasks


def seconds_cron(seconds: int) -> str:
    """A cron line (procrastinate's sixth field is seconds) firing every ``seconds`` seconds."""
    return f"* * * * * */{seconds}"


def build_app(settings: Settings, scaled: ScaledSettings, tasks: Tasks | None = None) -> App:
    """The App on the store's database, with crmbridge's tasks bound to ``tasks`` (a worker's);
    without ``tasks``, an App that only knows how to reach the database."""
    from procrastinate import App, PsycopgConnector

    connector = PsycopgConnector(
        conninfo=conninfo(settings.database_url.get_secret_value()),
        min_size=1,
        # One connection per running job's bookkeeping, plus the fetcher and the heartbeat.
        max_size=scaled.concurrency + 3,
    )
    app = App(connector=connector)
    if tasks is not None:
        register(app, tasks)
    return app


def register(app: App, tasks: Tasks) -> None:
    """Register crmbridge's tasks on ``app``, calling into ``tasks``."""
    scaled = tasks.scaled

    def dispatch(timestamp: int) -> str:
        return tasks.dispatch()

    def reap(timestamp: int) -> str:
        return tasks.reap()

    def cleanup(timestamp: int) -> str:
        return tasks.cleanup()

    def tick(context: JobContext, pipeline: str) -> str:
        return tasks.tick(_job_id(context), context.job.worker_id, pipeline)

    def backfill_chunk(context: JobContext, plan: str, chunk: int) -> str:
        return tasks.backfill_chunk(_job_id(context), plan, chunk)

    def backfill_finish(context: JobContext, plan: str) -> str:
        return tasks.backfill_finish(_job_id(context), context.job.worker_id, plan)

    for name, func, seconds_or_cron in (
        (DISPATCH, dispatch, seconds_cron(scaled.dispatch_seconds)),
        (REAP, reap, seconds_cron(scaled.reap_seconds)),
        (CLEANUP, cleanup, "17 * * * *"),
    ):
        # The queueing lock keeps one waiting at most when every worker is busy; no lock, so a
        # stalled one never stops the next.
        task = app.task(
            name=name, queue=QUEUE_CONTROL, priority=CONTROL_PRIORITY, queueing_lock=name
        )(func)
        app.periodic(cron=seconds_or_cron, periodic_id=name)(task)
    app.task(name=TICK, queue=QUEUE_SYNC, pass_context=True)(tick)
    app.task(name=BACKFILL_CHUNK, queue=QUEUE_BACKFILL, pass_context=True)(backfill_chunk)
    app.task(name=BACKFILL_FINISH, queue=QUEUE_BACKFILL, pass_context=True)(backfill_finish)


def _job_id(context: JobContext) -> int:
    job_id = context.job.id
    assert job_id is not None, "a running job has an id"
    return int(job_id)
