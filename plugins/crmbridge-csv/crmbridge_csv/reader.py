"""Reading one CSV file from a byte offset, record by record, knowing where each record ends.

The cursor remembers, per file, how many bytes were read and a SHA-256 of them. Reading again
starts at that offset when the bytes before it are unchanged (the file was appended to), and from
the start when they changed (the file was edited or replaced). Knowing the byte offset after each
record is what lets a batch's cursor point into the middle of a file.

Lines are split on ``\\n`` in bytes and decoded one by one, which is why the encoding must keep
ASCII as ASCII (UTF-8, cp1252, Latin-1 do; UTF-16 does not).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from crmbridge import normalize_email

CHUNK = 1 << 20


def native_id(rel: str, email: str | None, line: int) -> str:
    """The stable id of a row: its file and a hash of its email (so rows may be reordered, and
    rows added or removed around it, without changing it); the row's line when it has no email.
    """
    key = normalize_email(email) if email else ""
    if key:
        return f"{rel}#{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return f"{rel}#line{line}"


def modified_at(mtime_ns: int) -> datetime:
    """A file's modification time as an aware UTC datetime."""
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC)


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on (the header is line 1), its cells, the byte offset
    just after it, and why it could not be read cleanly (``None`` when it could)."""

    line: int
    last_line: int
    cells: list[str]
    end: int
    problem: str | None = None

    @property
    def blank(self) -> bool:
        return not any(cell.strip() for cell in self.cells)


class _Lines:
    """Decoded lines of a binary file, counting the bytes and lines consumed."""

    def __init__(
        self, handle: IO[bytes], encoding: str, start: int, line: int, hasher: Any
    ) -> None:
        self.handle = handle
        self.encoding = encoding
        self.consumed = start
        self.lines = line
        self.hasher = hasher
        self.problem: str | None = None

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.consumed += len(raw)
            self.lines += 1
            if self.hasher is not None:
                self.hasher.update(raw)
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                self.problem = (
                    f"byte {raw[exc.start]:#04x} at character {exc.start + 1} is not "
                    f"{self.encoding} text; set CRMBRIDGE_CSV__ENCODING to the file's encoding"
                )
                yield raw.decode(self.encoding, errors="replace")


class CsvFile:
    """One lead list on disk."""

    def __init__(self, path: Path, rel: str, *, encoding: str, delimiter: str) -> None:
        self.path = path
        self.rel = rel
        self.encoding = encoding
        self.delimiter = delimiter

    def prefix_hasher(self, length: int) -> Any:
        """A SHA-256 of the first ``length`` bytes (``None`` when the file is shorter now)."""
        hasher = hashlib.sha256()
        remaining = length
        with self.path.open("rb") as handle:
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    return None
                hasher.update(chunk)
                remaining -= len(chunk)
        return hasher

    def records(self, start: int = 0, line: int = 0, hasher: Any = None) -> Iterator[Record]:
        """Every record from byte ``start`` (which follows line ``line``), header included when
        ``start`` is 0; ``hasher`` is fed every byte read."""
        with self.path.open("rb") as handle:
            handle.seek(start)
            lines = _Lines(handle, self.encoding, start, line, hasher)
            reader = csv.reader(lines, delimiter=self.delimiter)
            while True:
                first = lines.lines + 1
                lines.problem = None
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield Record(first, lines.lines, [], lines.consumed, f"is not valid CSV: {exc}")
                    continue
                yield Record(first, lines.lines, cells, lines.consumed, lines.problem)

    def header(self) -> Record | None:
        """The first record (the column names), or ``None`` for an empty file."""
        return next(self.records(), None)
