"""The sidecar results CSV: what crmbridge has to say about each lead list row.

One row per source row crmbridge wrote back to (keyed on the row's native id), so a replayed write
changes nothing: the file is an upsert table, not a log. It is rewritten whole through a temporary
file and a rename, so a reader (a person in a spreadsheet, a script) never sees half a file.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from crmbridge import ANNOTATIONS

KEY_COLUMNS = ("native_id", "file", "row", "email")
COLUMNS = (*KEY_COLUMNS, *ANNOTATIONS)
"""The results file's first columns; shared fields written back follow, in name order."""


def cell(value: Any) -> str:
    """A value as the results file spells it (ISO times, ``true``/``false``, ``""`` for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


class ResultsFile:
    """The results CSV of one folder."""

    def __init__(self, path: Path, *, encoding: str, delimiter: str) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> dict[str, dict[str, str]]:
        """native id → its row (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return {}
        with self.path.open(encoding=self.encoding, newline="") as handle:
            return {
                row["native_id"]: {k: v or "" for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle, delimiter=self.delimiter)
                if row.get("native_id")
            }

    def write(self, rows: Mapping[str, Mapping[str, str]]) -> None:
        """Replace the file with ``rows`` (atomically)."""
        extra = sorted({k for row in rows.values() for k in row} - set(COLUMNS))
        columns = [*COLUMNS, *extra]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding=self.encoding, newline="") as handle:
                writer = csv.DictWriter(
                    handle, fieldnames=columns, delimiter=self.delimiter, restval=""
                )
                writer.writeheader()
                writer.writerows(rows.values())
            os.replace(tmp, self.path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
