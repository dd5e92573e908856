"""Structured log lines, with secrets always redacted and emails redacted at INFO and above.

Lines are ``key=value`` text by default or JSON (``CRMBRIDGE_LOG_FORMAT=json``). Every secret value
the settings hold is registered with :func:`register_secret` and replaced by ``**********``
wherever it appears, whatever the level; an email address becomes ``j***@example.com`` unless the
record is DEBUG (where a person debugging needs to see whom a line is about).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
_BEARER = re.compile(r"(?i)\b(bearer|authorization:?)\s+[A-Za-z0-9._~+/!=-]{8,}")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | SecretStr | None) -> None:
    """Make ``value`` be redacted from every log line from now on."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw and len(raw) >= 4:
        with _lock:
            _secrets.add(raw)
            # The password inside a URL (a database URL), as written and decoded; not the host,
            # the user or the database name, which are no secret and help reading a log.
            password = urlsplit(raw).password if "://" in raw else None
            for part in (password, unquote(password or "")):
                if part and len(part) >= 4:
                    _secrets.add(part)


def register_secrets_of(model: BaseModel) -> None:
    """Register every ``SecretStr`` field of ``model`` (and of its nested models)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            register_secret(value)
        elif isinstance(value, BaseModel):
            register_secrets_of(value)


def redact(text: str, *, emails: bool = True) -> str:
    """``text`` with every registered secret (and, if ``emails``, every email) masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "**********")
    text = _BEARER.sub(lambda m: f"{m.group(1)} **********", text)
    if emails:
        text = EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets (always) and emails (INFO and up) masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        emails = record.levelno >= logging.INFO
        record.msg = redact(message, emails=emails)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, emails=emails)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {
                k: redact(v, emails=emails) if isinstance(v, str) else v for k, v in fields.items()
            }
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-23T10:00:00Z INFO crmbridge.sync message key=value …``"""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = getattr(record, "fields", None) or {}
        pairs = " ".join(f"{k}={_value(v)}" for k, v in extra.items())
        line = f"{ts} {record.levelname} {record.name} {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(getattr(record, "fields", None) or {})
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, default=str, ensure_ascii=False)


def _value(v: Any) -> str:
    text = str(v)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is at the time (it may be swapped and closed since)."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """Ignored: this handler always writes to the current ``sys.stderr``."""


def configure_logging(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """Send crmbridge's (and its plugins') log records to ``stream`` (stderr), redacted."""
    root = logging.getLogger("crmbridge")
    for old in list(root.handlers):
        if getattr(old, "_crmbridge", False):
            root.removeHandler(old)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler._crmbridge = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    for noisy in ("urllib3", "simple_salesforce", "hubspot"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """``log.info("...", extra=fields(pipeline="default", pulled=10))``"""
    return {"fields": values}
