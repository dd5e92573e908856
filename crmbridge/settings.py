"""Settings, read from env files and the environment by pydantic-settings.

Every variable starts with ``CRMBRIDGE_``; nested settings use ``__``
(``CRMBRIDGE_PIPELINE__MARKETING=hubspot``, ``CRMBRIDGE_SALESFORCE__CLIENT_SECRET=...``).

Precedence, highest first:

1. real environment variables;
2. env files, the **later** file winning over the earlier (``--env-file base.env --env-file
   prod.env``: ``prod.env`` wins);
3. the defaults below.

Secrets are ``SecretStr``: shown as ``**********`` in every dump and log line. Each connector
declares its own settings class; :func:`connector_settings` reads it with the same env files.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from crmbridge.errors import SettingsError

PREFIX = "CRMBRIDGE_"
log = logging.getLogger("crmbridge.settings")

T = TypeVar("T", bound=BaseModel)


def _split_names(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class PipelineSettings(BaseModel):
    """One pipeline: a marketing connector, a sales connector, the definition, a schedule."""

    name: str = "default"
    marketing: str = "hubspot"
    """The connector that is the source of leads and receives outcomes."""
    sales: str = "salesforce"
    """The connector that receives handoffs and gives outcomes."""
    poll_seconds: float = Field(default=15.0, gt=0)
    """How often the daemon runs a sync cycle of this pipeline."""


class Settings(BaseSettings):
    """crmbridge's settings. Build with :func:`load_settings` to apply env files."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter="__",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    definition: Path = Path("configs/lead-definition.toml")
    """The lead definition file."""
    database_url: SecretStr = SecretStr("sqlite:///crmbridge.sqlite3")
    """The state store: a SQLite file (default) or ``postgresql+psycopg://...``."""
    runtime: Literal["embedded", "procrastinate"] = "embedded"
    pipeline: PipelineSettings = PipelineSettings()
    pipelines_dir: Path | None = None
    """A folder of env files, one per pipeline, for running several pipelines."""
    quota_reserve: float = Field(default=0.2, ge=0.0, lt=1.0)
    """The share of each system's API quota crmbridge leaves unused for everyone else."""
    load_plugins: Annotated[list[str] | None, NoDecode] = None
    """Load only these plugins (entry-point names, comma-separated); unset loads all."""
    disable_plugins: Annotated[list[str], NoDecode] = []
    """Plugins not to load (comma-separated names), built-in ones included."""
    trace_plugins: bool = False
    """Log every hook call with its arguments and results (DEBUG)."""
    plugin_file: Path | None = None
    """A one-file local plugin to load after the installed ones."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port for /healthz and /metrics (0: off)."""
    lease_seconds: float = Field(default=120.0, gt=0)
    """How long a process holds a pipeline before another may take it over."""

    _sources: tuple[Path, ...] = ()

    @field_validator("load_plugins", "disable_plugins", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _split_names(value)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def env_files(self) -> tuple[Path, ...]:
        """The env files these settings were read from, in order."""
        return self._sources

    @property
    def database_url_display(self) -> str:
        """The database URL with any password replaced by ``***``."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url.get_secret_value()).render_as_string(hide_password=True)


def load_settings(env_files: Sequence[str | os.PathLike[str]] = (), **overrides: Any) -> Settings:
    """Settings from ``env_files`` (later wins) and the environment (wins over files).

    A missing env file is a :class:`SettingsError`; an invalid value is one too, naming the
    variable. Env files that hold secrets and can be read by other users are warned about.
    """
    paths = tuple(Path(f) for f in env_files)
    for path in paths:
        if not path.is_file():
            raise SettingsError(f"env file {path} does not exist", hint="check the --env-file path")
        warn_if_world_readable(path)
    try:
        settings = Settings(_env_file=paths or None, **overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, paths)) from None
    settings._sources = paths
    return settings


def connector_settings(cls: type[T], name: str, settings: Settings) -> T:
    """A connector's settings of class ``cls``, from ``CRMBRIDGE_<NAME>__*`` with the same env
    files and precedence as ``settings``."""
    prefix = f"{PREFIX}{name.upper()}__"
    values = {
        key[len(prefix) :].lower(): v for key, v in _layered(settings.env_files, prefix).items()
    }
    try:
        return cls.model_validate(_nest(values))
    except ValidationError as exc:
        raise SettingsError(_describe(exc, settings.env_files, prefix=prefix)) from None


def _layered(files: Iterable[Path], prefix: str) -> dict[str, str]:
    """Raw ``PREFIX*`` values from the files (later wins) then the environment (wins)."""
    out: dict[str, str] = {}
    for path in files:
        for key, value in dotenv_values(path).items():
            if key.upper().startswith(prefix) and value is not None:
                out[key.upper()] = value
    for key, value in os.environ.items():
        if key.upper().startswith(prefix):
            out[key.upper()] = value
    return out


def _nest(flat: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _describe(exc: ValidationError, files: Sequence[Path], prefix: str = PREFIX) -> str:
    lines = []
    for err in exc.errors():
        var = prefix + "__".join(str(p).upper() for p in err["loc"])
        lines.append(f"{var}: {err['msg']}")
    where = f" (env files: {', '.join(map(str, files))})" if files else ""
    return "invalid settings" + where + ":\n  " + "\n  ".join(lines)


def warn_if_world_readable(path: Path) -> bool:
    """Warn when an env file holding secrets can be read by other users; True if warned."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return False
    secretish = [k for k in dotenv_values(path) if _is_secret_name(k)]
    if not secretish:
        return False
    log.warning(
        "env file %s holds secrets (%s) and is readable by other users; run: chmod 600 %s",
        path,
        ", ".join(sorted(secretish)),
        path,
    )
    return True


def _is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(w in upper for w in ("SECRET", "PASSWORD", "TOKEN", "PRIVATE_KEY", "API_KEY")) or (
        upper.endswith("DATABASE_URL")
    )


# -- config show ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingValue:
    """One effective setting, where it came from, and whether it is a secret."""

    key: str
    value: str
    source: str
    secret: bool


def describe_settings(
    settings: Settings, sections: Mapping[str, BaseModel] | None = None
) -> list[SettingValue]:
    """Every effective setting with secrets redacted and its source: ``environment``, an env file
    (with its line), or ``default``."""
    rows: list[SettingValue] = []
    file_keys = _file_keys(settings.env_files)

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            var = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                walk(value, var + "__")
                continue
            secret = isinstance(value, SecretStr)
            shown = _show_secret(var, value) if secret else _show(value)
            rows.append(SettingValue(var, shown, _source(var, file_keys), secret))

    walk(settings, PREFIX)
    for section, model in (sections or {}).items():
        walk(model, f"{PREFIX}{section.upper()}__")
    return rows


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _show_secret(var: str, value: SecretStr) -> str:
    if var.endswith("DATABASE_URL"):
        from sqlalchemy.engine import make_url

        return make_url(value.get_secret_value()).render_as_string(hide_password=True)
    return "**********" if value.get_secret_value() else ""


def _file_keys(files: Iterable[Path]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = line.strip()
            if text.startswith("export "):
                text = text[7:]
            if "=" in text and not text.startswith("#"):
                found[text.split("=", 1)[0].strip().upper()] = f"{path}:{lineno}"
    return found


def _source(var: str, file_keys: Mapping[str, str]) -> str:
    if any(k.upper() == var for k in os.environ):
        return "environment"
    if var in file_keys:
        return file_keys[var]
    return "default"
