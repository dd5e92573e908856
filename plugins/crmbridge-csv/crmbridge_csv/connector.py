"""The CSV connector: lead lists in a folder (trade-show exports, purchased lists, event sign-ups)
as a marketing source, and a sidecar results CSV where sales' verdicts come back.

* Each row is a :class:`~crmbridge.Change` with a stable id (:func:`~crmbridge_csv.reader.
  native_id`: the file and a hash of the row's email). A row that cannot be read cleanly carries
  its problems, each naming the file, the row and the column, so the core quarantines it and the
  other rows flow on.
* The cursor remembers, per file, the bytes read (and their SHA-256), the rows' ids and the line
  reached. An appended file is read from where it stopped; an edited or replaced file is read
  again from the start, and rows that vanished from it are reported as deletes, as are the rows
  of a file that left the folder. Nothing is read twice unless it changed.
* :meth:`CsvConnector.write_outcomes` upserts one row per lead into the results file, in one
  write per batch.

A file's "API calls" are the folder listings and file reads and writes it makes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from crmbridge import (
    ApiUsage,
    Change,
    ChangeBatch,
    ChangeKind,
    CheckReport,
    Connector,
    ConnectorSettings,
    Cursor,
    FatalError,
    Lead,
    LeadDefinition,
    LeadWrite,
    Problem,
    SetupReport,
    WriteRejected,
    WriteResult,
)
from crmbridge.definition import check_value
from crmbridge_csv.columns import ColumnMapper, ColumnPlan
from crmbridge_csv.reader import CsvFile, Record, modified_at, native_id
from crmbridge_csv.results import ResultsFile, cell
from crmbridge_csv.settings import CsvSettings

RACY_SECONDS = 2.0
"""A file changed this recently may change again within the same mtime tick (as git's "racy
clean" check knows): its content is compared, not only its size and time."""

Entry = dict[str, Any]


class _Page:
    """Changes gathered until a batch is full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.changes: list[Change] = []

    @property
    def full(self) -> bool:
        return len(self.changes) >= self.size

    def flush(self, state: Mapping[str, Entry]) -> ChangeBatch:
        changes, self.changes = self.changes, []
        return ChangeBatch(changes, Cursor({"files": {k: dict(v) for k, v in state.items()}}))


class CsvConnector(Connector):
    """Lead lists in CSV files, as a marketing source (see the module docstring)."""

    name = "csv"
    label = "CSV lead lists"
    roles: ClassVar[frozenset[str]] = frozenset({"marketing"})
    settings_class: ClassVar[type[ConnectorSettings]] = CsvSettings
    batch_size: ClassVar[int] = 5000

    def __init__(
        self,
        settings: ConnectorSettings,
        definition: LeadDefinition,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        if not isinstance(settings, CsvSettings):
            raise TypeError(f"CsvConnector needs CsvSettings, not {type(settings).__name__}")
        super().__init__(settings, definition, log=log)
        self.csv = settings
        self.calls = 0
        labels = {name: spec.label for name, spec in definition.fields.items()}
        self.columns = ColumnMapper(self.mapping, settings.columns, labels)
        self.results = ResultsFile(
            settings.folder / settings.results_file,
            encoding=settings.encoding,
            delimiter=settings.delimiter,
        )
        self._ids: dict[str, tuple[tuple[int, int], dict[str, int]]] = {}

    # -- the folder ----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.csv.folder

    def lead_lists(self) -> list[Path]:
        """The lead list files, by name (never the results file, hidden or lock files)."""
        self.calls += 1
        if not self.folder.is_dir():
            return []
        return sorted(
            path
            for path in self.folder.glob(self.csv.pattern)
            if path.is_file()
            and path.name != self.csv.results_file
            and not path.name.startswith((".", "~$"))
        )

    def _file(self, path: Path) -> CsvFile:
        rel = path.relative_to(self.folder).as_posix()
        return CsvFile(path, rel, encoding=self.csv.encoding, delimiter=self.csv.delimiter)

    # -- reading -------------------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """New and changed rows since ``cursor``, and the rows that left, a page at a time."""
        yield from self._walk(cursor, self.lead_lists(), deletes=True)

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every row of the files last modified in ``[since, until)`` (``since=None``: from the
        oldest); resumable."""
        yield from self._walk(cursor, self._in_range(since, until), deletes=False)

    def count_range(self, since: datetime | None, until: datetime | None) -> int | None:
        """The rows :meth:`pull_range` would read."""
        total = 0
        for path in self._in_range(since, until):
            self.calls += 1
            total += sum(1 for r in list(self._file(path).records())[1:] if not r.blank)
        return total

    def _in_range(self, since: datetime | None, until: datetime | None) -> list[Path]:
        found = []
        for path in self.lead_lists():
            changed = modified_at(path.stat().st_mtime_ns)
            if (since is None or since <= changed) and (until is None or changed < until):
                found.append(path)
        return found

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        """The rows with these ids as they are now (retrying quarantined rows)."""
        wanted = set(native_ids)
        files = {i.split("#", 1)[0] for i in wanted}
        found: list[Change] = []
        for path in self.lead_lists():
            csv_file = self._file(path)
            if csv_file.rel not in files:
                continue
            self.calls += 1
            mtime = modified_at(path.stat().st_mtime_ns)
            records = csv_file.records()
            header = next(records, None)
            if header is None:
                continue
            plan = self.columns.plan(header.cells)
            for record in records:
                if record.blank:
                    continue
                change = self._change(csv_file.rel, record, header.cells, plan, mtime)
                if change.native_id in wanted:
                    found.append(change)
        return found

    def _walk(
        self, cursor: Cursor, files: Iterable[Path], *, deletes: bool
    ) -> Iterator[ChangeBatch]:
        before = cursor.get("files") or {}
        state: dict[str, Entry] = {k: dict(v) for k, v in before.items()}
        page = _Page(self.csv.page_size)
        present: set[str] = set()
        for path in files:
            csv_file = self._file(path)
            present.add(csv_file.rel)
            yield from self._read_file(csv_file, state, page)
        if deletes:
            for rel in sorted(set(state) - present):
                entry = state[rel]
                gone = [*entry.get("ids", []), *entry.get("previous", [])]
                yield from self._deleted(rel, gone, state, page, drop=True)
        if page.changes or state != before:
            yield page.flush(state)

    def _read_file(
        self, csv_file: CsvFile, state: dict[str, Entry], page: _Page
    ) -> Iterator[ChangeBatch]:
        stat = csv_file.path.stat()
        entry = state.get(csv_file.rel)
        racy = time.time() - stat.st_mtime_ns / 1e9 < RACY_SECONDS
        if (
            entry is not None
            and entry["offset"] == stat.st_size
            and entry["mtime_ns"] == stat.st_mtime_ns
            and not racy
        ):
            return
        self.calls += 1
        start, line, ids, hasher = 0, 0, [], None
        previous: list[str] = list(entry.get("previous", [])) if entry is not None else []
        if entry is not None:
            hasher = csv_file.prefix_hasher(entry["offset"]) if entry["offset"] else None
            if hasher is not None and hasher.hexdigest() == entry["sha"]:
                start, line, ids = entry["offset"], entry["line"], list(entry["ids"])
            else:
                # edited or replaced: read it all again; rows not seen again are deletes
                previous = sorted({*entry["ids"], *previous})
                hasher = None
        if hasher is None:
            hasher = hashlib.sha256()
        mtime = modified_at(stat.st_mtime_ns)
        records = csv_file.records(start, line, hasher)
        header = next(records, None) if start == 0 else csv_file.header()
        if header is None:
            state[csv_file.rel] = self._entry(0, 0, stat.st_mtime_ns, hasher, [], previous)
            yield from self._finish(csv_file.rel, state, page, set())
            return
        plan = self.columns.plan(header.cells)
        offset, line = (header.end, header.last_line) if start == 0 else (start, line)
        seen = set(ids)
        for record in records:
            offset, line = record.end, record.last_line
            if record.blank:
                continue
            change = self._change(csv_file.rel, record, header.cells, plan, mtime)
            short = change.native_id.split("#", 1)[1]
            if short not in seen:
                seen.add(short)
                ids.append(short)
            page.changes.append(change)
            if page.full:
                state[csv_file.rel] = self._entry(
                    offset, line, stat.st_mtime_ns, hasher, ids, previous
                )
                yield page.flush(state)
        state[csv_file.rel] = self._entry(offset, line, stat.st_mtime_ns, hasher, ids, previous)
        yield from self._finish(csv_file.rel, state, page, seen)

    @staticmethod
    def _entry(
        offset: int, line: int, mtime_ns: int, hasher: Any, ids: list[str], previous: list[str]
    ) -> Entry:
        entry: Entry = {
            "offset": offset,
            "line": line,
            "mtime_ns": mtime_ns,
            "sha": hasher.copy().hexdigest(),
            "ids": list(ids),
        }
        if previous:
            entry["previous"] = list(previous)
        return entry

    def _finish(
        self, rel: str, state: dict[str, Entry], page: _Page, seen: set[str]
    ) -> Iterator[ChangeBatch]:
        """A file read to its end: the rows of its earlier version not seen again are gone."""
        previous = state[rel].pop("previous", [])
        gone = [short for short in previous if short not in seen]
        if gone:
            state[rel]["previous"] = gone
            yield from self._deleted(rel, gone, state, page, drop=False)

    def _deleted(
        self, rel: str, gone: list[str], state: dict[str, Entry], page: _Page, *, drop: bool
    ) -> Iterator[ChangeBatch]:
        """Deletes for ``gone``; the cursor keeps those not yet announced, so a crash between
        batches announces the rest next time."""
        now = datetime.now(UTC)
        key = "ids" if drop else "previous"
        for i, short in enumerate(gone):
            page.changes.append(
                Change(self.system_name(), f"{rel}#{short}", ChangeKind.DELETE, now)
            )
            if page.full:
                self._set_remaining(state, rel, key, gone[i + 1 :], drop)
                yield page.flush(state)
        self._set_remaining(state, rel, key, [], drop)

    @staticmethod
    def _set_remaining(
        state: dict[str, Entry], rel: str, key: str, remaining: list[str], drop: bool
    ) -> None:
        if rel not in state:
            return
        if remaining:
            state[rel][key] = list(remaining)
            if drop:
                state[rel].pop("previous", None)
        elif drop:
            del state[rel]
        else:
            state[rel].pop(key, None)

    def _change(
        self,
        rel: str,
        record: Record,
        header: Sequence[str],
        plan: ColumnPlan,
        mtime: datetime,
    ) -> Change:
        """One row as a change, with every problem named by file, row and column."""
        cells = record.cells
        where = f"{rel} row {record.line}"
        raw: dict[str, Any] = {
            (header[i] if i < len(header) else f"column {i + 1}"): value
            for i, value in enumerate(cells)
        }
        raw.update({"_file": rel, "_row": record.line})
        problems: list[Problem] = []
        if record.problem is not None:
            problems.append(Problem("record", "encoding", f"{where}: {record.problem}"))
        if len(cells) > len(header):
            problems.append(
                Problem(
                    "record",
                    "columns",
                    f"{where}: {len(cells)} cells under {len(header)} column names; a value "
                    f"holding the delimiter {self.csv.delimiter!r} must be quoted",
                )
            )
        values: dict[str, Any] = {}
        for index, shared in plan.fields.items():
            if index < len(cells):
                values[self.mapping.fields[shared]] = cells[index].strip()
        source = self.mapping.fields.get("lead_source")
        if source is not None and self.csv.lead_source and not values.get(source):
            values[source] = self.csv.lead_source
        email_column = plan.column_of("email")
        email = (
            cells[email_column].strip()
            if email_column is not None and email_column < len(cells)
            else ""
        )
        ident = native_id(rel, email, record.line)
        if email_column is None:
            problems.append(
                Problem(
                    "email",
                    "required",
                    f"{rel} has no email column (columns: {', '.join(header)}); name one with "
                    "CRMBRIDGE_CSV__COLUMNS",
                )
            )
        elif not email:
            problems.append(
                Problem(
                    "email",
                    "required",
                    f"{where}, column {header[email_column]!r}: is empty; every lead needs "
                    "an email",
                )
            )
        fields, found = self.mapping.from_native(values)
        for name, value in fields.items():
            spec = self.definition.fields.get(name)
            problem = check_value(spec, value) if spec is not None and value is not None else None
            if problem is not None:
                found.append(problem)
        for problem in found:
            column = plan.column_of(problem.field)
            label = f", column {header[column]!r}" if column is not None else ""
            problems.append(
                Problem(problem.field, problem.rule, f"{where}{label}: {problem.message}")
            )
        lead = Lead.from_fields(
            fields, source=self.system_name(), system_id=ident, modified_at=mtime
        )
        return Change(
            self.system_name(),
            ident,
            ChangeKind.UPSERT,
            mtime,
            lead=lead,
            raw=raw,
            problems=tuple(problems),
        )

    # -- writing -------------------------------------------------------------------------------

    def write_outcomes(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Upsert one results row per write, in one rewrite of the results file."""
        live = self._live_rows()
        self.calls += 1
        try:
            rows = self.results.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise FatalError(
                f"the results file {self.results.path} cannot be read: {exc}",
                plugin=self.name,
                hint="fix or move the file away; crmbridge writes a new one",
            ) from exc
        out: list[WriteResult] = []
        changed = False
        for write in writes:
            place = live.get(write.native_id or "")
            if place is None:
                out.append(self._gone(write))
                continue
            rel, line = place
            new = {
                "native_id": write.native_id or "",
                "file": rel,
                "row": str(line),
                "email": write.email,
                **{k: cell(v) for k, v in write.annotations.items()},
                **{k: cell(v) for k, v in write.fields.items()},
            }
            if write.stage:
                new["stage"] = write.stage
            if write.outcome:
                new["outcome"] = cell(write.outcome)
            old = rows.get(new["native_id"], {})
            merged = {**old, **new}
            if merged != old:
                rows[new["native_id"]] = merged
                changed = True
            out.append(WriteResult(write.key, ok=True, native_id=write.native_id, created=not old))
        if changed:
            self.calls += 1
            try:
                self.results.write(rows)
            except OSError as exc:
                raise FatalError(
                    f"the results file {self.results.path} cannot be written: {exc.strerror}",
                    plugin=self.name,
                    hint="check the folder's permissions and free space",
                ) from exc
        return out

    def _gone(self, write: LeadWrite) -> WriteResult:
        error = WriteRejected(
            f"row {write.native_id or '(no id)'} is no longer in the lead lists (its row was "
            "removed, its email changed, or its file left the folder)",
            system=self.system_name(),
            record=write.email,
            field="email",
            code="NOT_FOUND",
        )
        return WriteResult(write.key, ok=False, error=error)

    def _live_rows(self) -> dict[str, tuple[str, int]]:
        """native id → (file, row) of every row now in the lead lists (cached per file state)."""
        out: dict[str, tuple[str, int]] = {}
        for path in self.lead_lists():
            csv_file = self._file(path)
            stat = path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
            cached = self._ids.get(csv_file.rel)
            if cached is None or cached[0] != key:
                self.calls += 1
                cached = (key, self._row_ids(csv_file))
                self._ids[csv_file.rel] = cached
            out.update({ident: (csv_file.rel, line) for ident, line in cached[1].items()})
        return out

    def _row_ids(self, csv_file: CsvFile) -> dict[str, int]:
        records = csv_file.records()
        header = next(records, None)
        if header is None:
            return {}
        column = self.columns.plan(header.cells).column_of("email")
        ids: dict[str, int] = {}
        for record in records:
            if record.blank:
                continue
            email = (
                record.cells[column] if column is not None and column < len(record.cells) else ""
            )
            ids.setdefault(native_id(csv_file.rel, email.strip(), record.line), record.line)
        return ids

    # -- checking and setting up ---------------------------------------------------------------

    def check(self) -> CheckReport:
        """The folder, each file's columns, the results file, and unmapped picklist values."""
        report = CheckReport(self.system_name())
        if not self.folder.is_dir():
            self.calls += 1
            report.add(
                "error",
                "folder",
                f"{self.folder} is not a folder",
                "create it, or set CRMBRIDGE_CSV__FOLDER",
            )
            return report
        files = self.lead_lists()
        seen_values: dict[str, set[str]] = {}
        rows = 0
        for path in files:
            rows += self._check_file(self._file(path), report, seen_values)
        report.add(
            "ok" if files else "warning",
            "folder",
            f"{self.folder}: {len(files)} lead list(s) matching {self.csv.pattern!r}, {rows} rows"
            if files
            else f"{self.folder}: no file matches {self.csv.pattern!r} yet",
        )
        if not os.access(self.folder, os.W_OK):
            report.add(
                "error",
                "results",
                f"cannot write {self.results.path}: the folder is read-only",
                "let the crmbridge user write to the folder",
            )
        for picklist in self.mapping.picklists.values():
            # a lead list shows the values it uses, not the whole list: only unmapped ones drift
            actual = seen_values.get(picklist.field, set()) | set(picklist.values)
            report.drift.extend(d for d in picklist.drift(actual) if d.kind == "unmapped")
        return report

    def _check_file(
        self, csv_file: CsvFile, report: CheckReport, seen_values: dict[str, set[str]]
    ) -> int:
        self.calls += 1
        records = csv_file.records()
        header = next(records, None)
        if header is None:
            report.add("warning", csv_file.rel, "is empty")
            return 0
        plan = self.columns.plan(header.cells)
        if plan.column_of("email") is None:
            report.add(
                "error",
                csv_file.rel,
                f"has no email column (columns: {', '.join(header.cells)}); its rows are "
                "quarantined",
                'map one with CRMBRIDGE_CSV__COLUMNS=\'{"<column>": "email"}\'',
            )
        if plan.unused:
            report.add(
                "warning",
                csv_file.rel,
                f"columns not read: {', '.join(plan.unused)}",
                "map them with CRMBRIDGE_CSV__COLUMNS if they hold a shared field",
            )
        for header_name, first in plan.duplicates:
            report.add(
                "warning",
                csv_file.rel,
                f"column {header_name!r} means the same field as {first!r}; only {first!r} is read",
            )
        picklisted = {
            index: self.mapping.fields[shared]
            for index, shared in plan.fields.items()
            if self.mapping.picklist_for_field(self.mapping.fields[shared]) is not None
        }
        rows = 0
        for record in records:
            if record.blank:
                continue
            rows += 1
            for index, native in picklisted.items():
                if index < len(record.cells) and record.cells[index].strip():
                    seen_values.setdefault(native, set()).add(record.cells[index].strip())
        return rows

    def setup(self, *, dry_run: bool = False) -> SetupReport:
        """Create the folder and the results file (with its header); idempotent."""
        report = SetupReport(self.system_name())
        self.calls += 1
        if self.folder.is_dir():
            report.existing.append(f"folder {self.folder}")
        else:
            report.created.append(f"folder {self.folder}")
            if not dry_run:
                self.folder.mkdir(parents=True)
        if self.results.exists():
            report.existing.append(f"results file {self.results.path.name}")
        else:
            report.created.append(f"results file {self.results.path.name}")
            if not dry_run:
                self.results.write({})
        return report

    def api_usage(self) -> ApiUsage:
        """File operations made; a folder has no quota."""
        return ApiUsage(self.system_name(), calls=self.calls, window="none")


def _cell(cells: Sequence[str], index: int | None) -> str:
    """The trimmed cell at ``index``; ``""`` for no column or a short row."""
    return cells[index].strip() if index is not None and index < len(cells) else ""
