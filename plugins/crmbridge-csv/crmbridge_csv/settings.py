"""The CSV connector's settings, read from ``CRMBRIDGE_CSV__*`` in the env files::

CRMBRIDGE_CSV__FOLDER=/srv/crmbridge/lead-lists
CRMBRIDGE_CSV__COLUMNS='{"Badge E-Mail": "email", "Org": "company", "Notes": ""}'
CRMBRIDGE_CSV__ENCODING=cp1252
CRMBRIDGE_CSV__DELIMITER=;
CRMBRIDGE_CSV__LEAD_SOURCE=trade_show
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from crmbridge import ConnectorSettings


class CsvSettings(ConnectorSettings):
    """Where the lead lists are and how to read them.

    :param folder: the folder holding the CSV files (not searched below itself unless
        ``pattern`` says so, e.g. ``**/*.csv``).
    :param pattern: which files are lead lists (a glob, relative to ``folder``).
    :param columns: CSV header → shared field name, added to (and winning over) the built-in
        aliases; an empty name ignores the column. Headers match without regard to case,
        spaces and punctuation (``"E-Mail Address"`` is ``"emailaddress"``).
    :param encoding: the files' text encoding; ``utf-8-sig`` (the default) also reads plain
        UTF-8. It must keep ASCII as ASCII (``cp1252``, ``latin-1`` are fine; UTF-16 is not).
    :param delimiter: one character; ``tab`` or ``\\t`` for tab-separated files.
    :param lead_source: a ``lead_source`` value for rows that have none (``trade_show``).
    :param results_file: the sidecar CSV, in ``folder``, where outcomes are written back (one
        row per lead list row crmbridge has news for); never read as a lead list.
    :param page_size: rows per batch handed to the core (the cursor is committed per batch).
    """

    folder: Path
    pattern: str = "*.csv"
    columns: dict[str, str | None] = {}
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    lead_source: str | None = None
    results_file: str = "crmbridge-results.csv"
    page_size: int = Field(default=500, ge=1, le=100_000)

    @field_validator("columns", mode="before")
    @classmethod
    def _json_columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not JSON ({exc.msg} at character {exc.pos})") from None
        return value

    @field_validator("encoding")
    @classmethod
    def _ascii_compatible(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"{value!r} is not an encoding Python knows") from None
        if "\n,;".encode(value, errors="replace") != b"\n,;":
            raise ValueError(
                f"{value!r} does not keep ASCII as ASCII; save the files as UTF-8 (or cp1252)"
            )
        return value

    @field_validator("delimiter", mode="before")
    @classmethod
    def _one_character(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("tab", "\\t"):
            return "\t"
        if isinstance(value, str) and len(value) != 1:
            raise ValueError(f"must be one character (got {value!r}); use `tab` for tabs")
        return value

    @field_validator("lead_source", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("results_file")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.strip() or Path(value).name != value:
            raise ValueError(f"must be a file name in the folder, not a path (got {value!r})")
        return value
