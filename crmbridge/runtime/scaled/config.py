"""The scaled runtime's settings (``CRMBRIDGE_SCALED__*``) and the checks made before it starts.

They are read like a connector's settings, from the same env files and environment::

    CRMBRIDGE_RUNTIME=procrastinate
    CRMBRIDGE_DATABASE_URL=postgresql+psycopg://crmbridge@db.internal/crmbridge
    CRMBRIDGE_SCALED__DISPATCH_SECONDS=5
    CRMBRIDGE_SCALED__WORKER_TIMEOUT_SECONDS=30
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url

from crmbridge.errors import ConfigurationError
from crmbridge.settings import PREFIX, Settings, connector_settings

SECTION = "scaled"


class ScaledSettings(BaseModel):
    """How the workers share the work; every value has a default fit for production."""

    dispatch_seconds: int = Field(default=5, ge=1, le=59)
    """How often the periodic ``dispatch`` looks for due pipelines (a cron seconds step)."""
    reap_seconds: int = Field(default=10, ge=1, le=59)
    """How often the periodic ``reap`` looks for jobs of dead workers."""
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often each worker tells PostgreSQL it is alive."""
    worker_timeout_seconds: float = Field(default=30.0, gt=0)
    """A worker whose last heartbeat is older is dead: ``reap`` fails its jobs and frees its
    pipelines. A dead worker's pipeline is running again within about this plus
    ``reap_seconds`` and ``dispatch_seconds``."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Jobs one worker runs at once (threads), unless ``crmbridge worker --concurrency`` says."""
    backfill_chunks: int = Field(default=16, ge=1, le=1000)
    """Time slices a backfill is split into; more than workers, so a fast worker takes more."""
    keep_jobs_hours: int = Field(default=24, ge=1)
    """Finished jobs and the tick log are kept this long (hourly ``cleanup``)."""


def scaled_settings(settings: Settings) -> ScaledSettings:
    """The ``CRMBRIDGE_SCALED__*`` settings, checked against each other."""
    scaled = connector_settings(ScaledSettings, SECTION, settings)
    prefix = f"{PREFIX}{SECTION.upper()}__"
    if scaled.worker_timeout_seconds < 3 * scaled.heartbeat_seconds:
        raise ConfigurationError(
            f"{prefix}WORKER_TIMEOUT_SECONDS ({scaled.worker_timeout_seconds:g}) must be at least "
            f"three heartbeats ({prefix}HEARTBEAT_SECONDS is {scaled.heartbeat_seconds:g}); "
            "otherwise a live worker that misses one heartbeat has its jobs failed",
            hint=f"raise {prefix}WORKER_TIMEOUT_SECONDS or lower {prefix}HEARTBEAT_SECONDS",
        )
    return scaled


def require_postgres(settings: Settings) -> None:
    """The scaled runtime keeps its jobs in PostgreSQL, through psycopg 3: anything else is a
    configuration error naming ``CRMBRIDGE_DATABASE_URL``."""
    url = make_url(settings.database_url.get_secret_value())
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        return
    shown = settings.database_url_display
    if url.get_backend_name() == "postgresql":
        raise ConfigurationError(
            f"CRMBRIDGE_RUNTIME=procrastinate needs the psycopg (3) driver, but "
            f"CRMBRIDGE_DATABASE_URL is {shown}",
            hint="write the URL as postgresql+psycopg://user@host/database",
        )
    raise ConfigurationError(
        f"CRMBRIDGE_RUNTIME=procrastinate needs PostgreSQL, but CRMBRIDGE_DATABASE_URL is {shown}",
        hint="set CRMBRIDGE_DATABASE_URL=postgresql+psycopg://user@host/database, or "
        "CRMBRIDGE_RUNTIME=embedded to run in one process",
    )


def conninfo(url: str) -> str:
    """The libpq connection string for procrastinate, from the store's SQLAlchemy URL (query
    options such as ``options=-csearch_path=...`` or ``sslmode`` carried over)."""
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    params: dict[str, str] = {}
    for key, value in (
        ("host", parsed.host),
        ("port", parsed.port),
        ("dbname", parsed.database),
        ("user", parsed.username),
        ("password", parsed.password),
    ):
        if value is not None:
            params[key] = str(value)
    for name, given in parsed.query.items():
        params[name] = given if isinstance(given, str) else given[-1]
    return make_conninfo(**params)
