"""The CSV connector's own behaviour: column mapping, per-row problems, the cursor (appends,
edits, removed rows and files, resuming mid-file), the results file, check and setup."""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crmbridge_csv import CsvConnector, CsvSettings, native_id
from crmbridge_csv.testing import csv_definition, write_lead_list

from crmbridge import (
    Change,
    ChangeKind,
    Cursor,
    FatalError,
    LeadWrite,
    OutcomeKind,
    SettingsError,
    load_settings,
)
from crmbridge.settings import connector_settings

DEFINITION = csv_definition()


def ada(i: int = 0, **more: Any) -> dict[str, Any]:
    return {
        "email": f"ada{i}@analytical.example",
        "first_name": "Ada",
        "last_name": f"Lovelace{i}",
        "company": "Analytical Engines",
        "job_title": "Head of Research",
        "country": "GB",
        "employees": "250",
        "lead_source": "Trade Show",
        **more,
    }


def connector(folder: Path, **settings: Any) -> CsvConnector:
    return CsvConnector(CsvSettings(folder=folder, **settings), DEFINITION)


def drain(c: CsvConnector, cursor: Cursor | None = None) -> tuple[list[Change], Cursor]:
    changes: list[Change] = []
    last = cursor or Cursor()
    for batch in c.pull_changes(last):
        changes.extend(batch.changes)
        last = batch.cursor
    return changes, last


def age(path: Path, seconds: float = 60) -> None:
    """Make a file look modified a while ago (past the racy-clean window)."""
    past = (datetime.now(UTC) - timedelta(seconds=seconds)).timestamp()
    os.utime(path, (past, past))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "lists"
    path.mkdir()
    return path


# -- reading rows ----------------------------------------------------------------------------


def test_rows_become_leads_with_stable_ids(folder: Path) -> None:
    write_lead_list(folder / "websummit.csv", [ada(1), ada(2)])
    changes, _ = drain(connector(folder))
    assert [c.native_id for c in changes] == [
        native_id("websummit.csv", "ada1@analytical.example", 2),
        native_id("websummit.csv", "ada2@analytical.example", 3),
    ]
    first = changes[0]
    assert first.native_id.startswith("websummit.csv#")
    assert first.kind is ChangeKind.UPSERT
    assert first.problems == ()
    assert first.lead is not None
    assert first.lead.email == "ada1@analytical.example"
    assert first.lead.fields["employees"] == 250
    assert first.lead.fields["lead_source"] == "trade_show"
    assert first.raw["Company Name"] == "Analytical Engines"
    assert first.raw["_file"] == "websummit.csv"
    assert first.raw["_row"] == 2
    assert first.modified_at.tzinfo is not None


def test_bad_rows_carry_problems_naming_file_row_and_column(folder: Path) -> None:
    rows = [
        ada(1),
        ada(2, email="not-an-email"),
        ada(3, employees="fifty-ish"),
        ada(4, email=""),
        ada(5, lead_source="Carrier Pigeon"),
    ]
    write_lead_list(folder / "expo.csv", rows)
    with (folder / "expo.csv").open("a", encoding="utf-8") as handle:
        handle.write("ada6@analytical.example,Ada,L,Co,CTO,GB,10,webinar,extra,cells\n")
    changes, _ = drain(connector(folder))
    messages = {c.raw["_row"]: [p.message for p in c.problems] for c in changes}
    assert messages[2] == []
    assert messages[3] == [
        "expo.csv row 3, column 'E-mail': 'not-an-email' is not a valid email address"
    ]
    assert messages[4] == [
        "expo.csv row 4, column 'Employees': 'fifty-ish' cannot be read as an integer"
    ]
    assert messages[5] == ["expo.csv row 5, column 'E-mail': is empty; every lead needs an email"]
    assert changes[3].native_id == "expo.csv#line5"
    [pigeon] = messages[6]
    assert pigeon.startswith("expo.csv row 6, column 'Lead Source': lead-definition.toml: ")
    assert "has no mapping for lead_source 'Carrier Pigeon'" in pigeon
    assert messages[7] == [
        "expo.csv row 7: 10 cells under 8 column names; a value holding the delimiter ',' must "
        "be quoted"
    ]
    rules = {c.raw["_row"]: [p.rule for p in c.problems] for c in changes}
    assert rules[3] == ["email_format"]
    assert rules[6] == ["picklist_mapping"]


def test_a_file_without_an_email_column_says_how_to_map_one(folder: Path) -> None:
    (folder / "badges.csv").write_text("Name,Badge Mail\nAda,ada@x.example\n", encoding="utf-8")
    [change] = drain(connector(folder))[0]
    assert [p.message for p in change.problems] == [
        "badges.csv has no email column (columns: Name, Badge Mail); name one with "
        "CRMBRIDGE_CSV__COLUMNS"
    ]
    [mapped] = drain(connector(folder, columns={"Badge Mail": "email", "Name": "first_name"}))[0]
    assert mapped.problems == ()
    assert mapped.lead is not None
    assert mapped.lead.fields == {"email": "ada@x.example", "first_name": "Ada"}


def test_undecodable_bytes_are_a_row_problem_and_the_encoding_setting_reads_them(
    folder: Path,
) -> None:
    text = "E-mail;Company Name\nzoe@x.example;Caf\u00e9 M\u00fcller\nyan@x.example;Plain\n"
    (folder / "cp1252.csv").write_bytes(text.encode("cp1252"))
    changes, _ = drain(connector(folder, delimiter=";"))
    assert [p.rule for p in changes[0].problems] == ["encoding"]
    assert changes[0].problems[0].message == (
        "cp1252.csv row 2: byte 0xe9 at character 18 is not utf-8-sig text; set "
        "CRMBRIDGE_CSV__ENCODING to the file's encoding"
    )
    assert changes[1].problems == ()
    good, _ = drain(connector(folder, delimiter=";", encoding="cp1252"))
    assert good[0].problems == ()
    assert good[0].lead is not None
    assert good[0].lead.fields["company"] == "Caf\u00e9 M\u00fcller"


def test_tab_separated_files_with_a_byte_order_mark(folder: Path) -> None:
    text = "\ufeffEmail Address\tOrganisation\tSource\nkim@x.example\tKim AG\tEvent\n"
    (folder / "fair.tsv").write_bytes(text.encode("utf-8"))
    [change] = drain(connector(folder, pattern="*.tsv", delimiter="tab"))[0]
    assert change.problems == ()
    assert change.lead is not None
    assert change.lead.fields == {
        "email": "kim@x.example",
        "company": "Kim AG",
        "lead_source": "trade_show",
    }


def test_a_default_lead_source_fills_rows_without_one(folder: Path) -> None:
    write_lead_list(folder / "a.csv", [ada(1, lead_source=""), ada(2, lead_source="webinar")])
    changes, _ = drain(connector(folder, lead_source="trade_show"))
    assert [c.lead.fields["lead_source"] for c in changes if c.lead] == ["trade_show", "webinar"]


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers(folder: Path) -> None:
    (folder / "gaps.csv").write_text(
        'E-mail,Company\n\nann@x.example,"Multi\nLine Co"\n,\nbob@x.example,B\n', encoding="utf-8"
    )
    changes, _ = drain(connector(folder))
    assert [(c.raw["_row"], c.raw["E-mail"]) for c in changes] == [
        (3, "ann@x.example"),
        (6, "bob@x.example"),
    ]
    assert changes[0].lead is not None
    assert changes[0].lead.fields["company"] == "Multi\nLine Co"


# -- the cursor ------------------------------------------------------------------------------


def test_nothing_is_read_twice_and_an_appended_file_is_read_from_where_it_stopped(
    folder: Path,
) -> None:
    path = folder / "expo.csv"
    write_lead_list(path, [ada(1), ada(2)])
    c = connector(folder)
    first, cursor = drain(c)
    assert len(first) == 2
    age(path)
    again, cursor = drain(c, cursor)
    assert again == []
    calls = c.calls
    assert drain(c, cursor)[0] == []
    assert c.calls == calls + 1, "an unchanged, settled file is not even opened"
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(["ada3@analytical.example", "Ada", "L3", "Co", "CTO", "GB",
                                     "12", "webinar"])  # fmt: skip
    appended, cursor = drain(c, cursor)
    assert [(ch.raw["_row"], ch.lead.email if ch.lead else None) for ch in appended] == [
        (4, "ada3@analytical.example")
    ]
    assert drain(c, cursor)[0] == []


def test_a_cursor_in_the_middle_of_a_file_resumes_exactly(folder: Path) -> None:
    write_lead_list(folder / "big.csv", [ada(i) for i in range(25)])
    c = connector(folder, page_size=10)
    batches = list(c.pull_changes(Cursor()))
    assert [len(b.changes) for b in batches] == [10, 10, 5]
    # a crash after the first batch: the next cycle starts from its cursor
    rest, _ = drain(c, batches[0].cursor)
    assert [ch.raw["_row"] for ch in rest] == list(range(12, 27))


def test_an_edited_file_is_read_again_and_its_vanished_rows_are_deletes(folder: Path) -> None:
    path = folder / "expo.csv"
    write_lead_list(path, [ada(1), ada(2), ada(3)])
    c = connector(folder)
    first, cursor = drain(c)
    write_lead_list(path, [ada(3), ada(1, company="Babbage & Co")])
    changes, cursor = drain(c, cursor)
    upserts = {ch.native_id: ch for ch in changes if ch.kind is ChangeKind.UPSERT}
    deletes = [ch.native_id for ch in changes if ch.kind is ChangeKind.DELETE]
    assert deletes == [first[1].native_id]
    assert set(upserts) == {first[0].native_id, first[2].native_id}
    edited = upserts[first[0].native_id].lead
    assert edited is not None
    assert edited.fields["company"] == "Babbage & Co"
    assert drain(c, cursor)[0] == []


def test_a_file_that_leaves_the_folder_deletes_its_rows_resumably(folder: Path) -> None:
    write_lead_list(folder / "old.csv", [ada(i) for i in range(5)])
    write_lead_list(folder / "new.csv", [ada(9)])
    c = connector(folder, page_size=2)
    first, cursor = drain(c)
    (folder / "old.csv").unlink()
    batches = list(c.pull_changes(cursor))
    deleted = [ch.native_id for b in batches for ch in b.changes]
    assert sorted(deleted) == sorted(ch.native_id for ch in first if ch.raw["_file"] == "old.csv")
    assert all(ch.kind is ChangeKind.DELETE for b in batches for ch in b.changes)
    # stopped after the first page of deletes: the rest are announced next time, once
    rest, final = drain(c, batches[0].cursor)
    assert sorted(ch.native_id for ch in rest) == sorted(deleted[2:])
    assert "old.csv" not in final.get("files")
    assert drain(c, final)[0] == []


def test_the_results_file_and_hidden_files_are_never_lead_lists(folder: Path) -> None:
    write_lead_list(folder / "a.csv", [ada(1)])
    write_lead_list(folder / ".~lock.a.csv", [ada(2)])
    write_lead_list(folder / "~$a.csv", [ada(3)])
    c = connector(folder)
    c.setup()
    assert (folder / "crmbridge-results.csv").exists()
    assert [p.name for p in c.lead_lists()] == ["a.csv"]


def test_fetch_reads_rows_by_id_as_they_are_now(folder: Path) -> None:
    write_lead_list(folder / "a.csv", [ada(1, employees="lots"), ada(2)])
    c = connector(folder)
    broken = drain(c)[0][0]
    assert broken.problems
    write_lead_list(folder / "a.csv", [ada(1, employees="300"), ada(2)])
    [fixed] = c.fetch([broken.native_id])
    assert fixed.problems == ()
    assert fixed.lead is not None
    assert fixed.lead.fields["employees"] == 300


def test_pull_range_reads_the_files_modified_in_the_range(folder: Path) -> None:
    write_lead_list(folder / "old.csv", [ada(1), ada(2)])
    write_lead_list(folder / "new.csv", [ada(3)])
    age(folder / "old.csv", 86400 * 10)
    c = connector(folder)
    since = datetime.now(UTC) - timedelta(days=1)
    assert c.count_range(since, None) == 1
    changes = [ch for b in c.pull_range(since, None, Cursor()) for ch in b.changes]
    assert [ch.raw["_file"] for ch in changes] == ["new.csv"]
    everything = datetime.now(UTC) - timedelta(days=30)
    assert c.count_range(everything, None) == 3


# -- writing outcomes ------------------------------------------------------------------------


def write_for(change: Change, **kw: Any) -> LeadWrite:
    assert change.lead is not None
    return LeadWrite(
        email=change.lead.email, crmbridge_id="cb-1", native_id=change.native_id, create=False,
        **kw,
    )  # fmt: skip


def results(folder: Path) -> list[dict[str, str]]:
    with (folder / "crmbridge-results.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_outcomes_are_upserted_into_the_results_file(folder: Path) -> None:
    write_lead_list(folder / "expo.csv", [ada(1), ada(2)])
    c = connector(folder)
    changes, _ = drain(c)
    due = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    handed = write_for(
        changes[0], stage="mql", annotations={"handed_off_at": due, "sla_breached": False}
    )
    [result] = c.write_outcomes([handed])
    assert result.ok
    assert result.created is True
    rejected = write_for(
        changes[0],
        stage="recycled",
        stage_backwards=True,
        outcome=OutcomeKind.REJECTED,
        annotations={"outcome_reason": "No budget", "owner": "anna@acme.example"},
        fields={"phone": "+44 20 7946 0000"},
    )
    assert c.write_outcomes([rejected])[0].created is False
    [row] = results(folder)
    assert {k: v for k, v in row.items() if v} == {
        "native_id": changes[0].native_id,
        "file": "expo.csv",
        "row": "2",
        "email": "ada1@analytical.example",
        "stage": "recycled",
        "handed_off_at": "2026-11-24T09:00:00+00:00",
        "sla_breached": "false",
        "outcome": "rejected",
        "outcome_reason": "No budget",
        "owner": "anna@acme.example",
        "phone": "+44 20 7946 0000",
    }
    before = (folder / "crmbridge-results.csv").stat().st_mtime_ns
    assert all(r.ok for r in c.write_outcomes([rejected]))
    assert (folder / "crmbridge-results.csv").stat().st_mtime_ns == before, "a replay is a no-op"


def test_a_write_for_a_row_that_left_fails_alone(folder: Path) -> None:
    write_lead_list(folder / "expo.csv", [ada(1), ada(2)])
    c = connector(folder)
    changes, _ = drain(c)
    write_lead_list(folder / "expo.csv", [ada(2)])
    gone, kept = c.write_outcomes([write_for(ch, stage="sal") for ch in changes])
    assert kept.ok
    assert not gone.ok
    assert gone.error is not None
    assert gone.error.message == (
        f"row {changes[0].native_id} is no longer in the lead lists (its row was removed, its "
        "email changed, or its file left the folder)"
    )
    assert (gone.error.system, gone.error.record, gone.error.field) == (
        "csv",
        "ada1@analytical.example",
        "email",
    )
    assert gone.error.code == "NOT_FOUND"


def test_an_unwritable_results_file_stops_the_pipeline_with_the_fix(folder: Path) -> None:
    write_lead_list(folder / "expo.csv", [ada(1)])
    c = connector(folder)
    [change] = drain(c)[0]
    (folder / "crmbridge-results.csv").mkdir()
    with pytest.raises(FatalError) as caught:
        c.write_outcomes([write_for(change, stage="mql")])
    assert caught.value.message == (
        f"the results file {folder / 'crmbridge-results.csv'} cannot be written: Is a directory"
    )
    assert caught.value.hint == "check the folder's permissions and free space"
    (folder / "crmbridge-results.csv").rmdir()
    (folder / "crmbridge-results.csv").write_bytes(b"native_id\n\xff\xfe\n")
    with pytest.raises(FatalError) as unreadable:
        c.write_outcomes([write_for(change, stage="mql")])
    assert "cannot be read" in unreadable.value.message
    assert unreadable.value.hint == "fix or move the file away; crmbridge writes a new one"


# -- check and setup -------------------------------------------------------------------------


def test_check_reports_the_folder_columns_and_drift(folder: Path, tmp_path: Path) -> None:
    missing = connector(tmp_path / "nowhere").check()
    assert not missing.ok
    assert [(i.level, i.message, i.fix) for i in missing.items] == [
        (
            "error",
            f"{tmp_path / 'nowhere'} is not a folder",
            "create it, or set CRMBRIDGE_CSV__FOLDER",
        )
    ]
    (folder / "scan.csv").write_text(
        "E-mail,Company,Badge Colour,Source\nann@x.example,A,red,Booth Scan\n", encoding="utf-8"
    )
    (folder / "names.csv").write_text("Name\nBob\n", encoding="utf-8")
    report = connector(folder).check()
    items = [(i.level, i.subject, i.message) for i in report.items]
    assert ("warning", "scan.csv", "columns not read: Badge Colour") in items
    assert (
        "error",
        "names.csv",
        "has no email column (columns: Name); its rows are quarantined",
    ) in items
    assert ("ok", "folder", f"{folder}: 2 lead list(s) matching '*.csv', 2 rows") in items
    [drift] = report.drift
    assert (drift.value, drift.kind) == ("Booth Scan", "unmapped")
    assert "[systems.csv.picklists.lead_source] has no mapping for lead_source 'Booth Scan'" in (
        drift.message
    )


def test_setup_creates_the_folder_and_results_file_once(tmp_path: Path) -> None:
    c = connector(tmp_path / "new")
    planned = c.setup(dry_run=True)
    assert planned.created == [f"folder {tmp_path / 'new'}", "results file crmbridge-results.csv"]
    assert not (tmp_path / "new").exists()
    assert c.setup().created == planned.created
    again = c.setup()
    assert again.created == []
    assert again.existing == planned.created
    assert (
        (tmp_path / "new" / "crmbridge-results.csv")
        .read_text(encoding="utf-8-sig")
        .startswith("native_id,file,row,email,crmbridge_id,stage,score")
    )


# -- settings --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("CRMBRIDGE_CSV__PATTERN=*.csv", "CRMBRIDGE_CSV__FOLDER: Field required"),
        ("CRMBRIDGE_CSV__DELIMITER=;;", "CRMBRIDGE_CSV__DELIMITER: Value error, must be one "
                                        "character (got ';;'); use `tab` for tabs"),
        ("CRMBRIDGE_CSV__ENCODING=utf-16", "CRMBRIDGE_CSV__ENCODING: Value error, 'utf-16' does "
                                           "not keep ASCII as ASCII"),
        ("CRMBRIDGE_CSV__ENCODING=klingon", "'klingon' is not an encoding Python knows"),
        ("CRMBRIDGE_CSV__COLUMNS={Org: company}", "CRMBRIDGE_CSV__COLUMNS: Value error, is not "
                                                  "JSON"),
        ("CRMBRIDGE_CSV__RESULTS_FILE=out/results.csv", "must be a file name in the folder"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_variable(tmp_path: Path, line: str, message: str) -> None:
    env = tmp_path / "csv.env"
    folder = "" if "FOLDER" in message else f"CRMBRIDGE_CSV__FOLDER={tmp_path}\n"
    env.write_text(folder + line + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        connector_settings(CsvSettings, "csv", load_settings([env]))
    assert message in str(caught.value)


@pytest.mark.usefixtures("clean_env")
def test_settings_from_an_env_file(tmp_path: Path) -> None:
    env = tmp_path / "csv.env"
    env.write_text(
        f"CRMBRIDGE_CSV__FOLDER={tmp_path}\n"
        'CRMBRIDGE_CSV__COLUMNS=\'{"Badge Mail": "email", "Notes": ""}\'\n'
        "CRMBRIDGE_CSV__DELIMITER=tab\n"
        "CRMBRIDGE_CSV__LEAD_SOURCE=trade_show\n",
        encoding="utf-8",
    )
    settings = connector_settings(CsvSettings, "csv", load_settings([env]))
    assert settings.folder == tmp_path
    assert settings.columns == {"Badge Mail": "email", "Notes": ""}
    assert settings.delimiter == "\t"
    assert settings.lead_source == "trade_show"


def test_a_column_mapped_to_an_unknown_field_is_named(folder: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        connector(folder, columns={"Cell": "mobile"})
    assert caught.value.message == (
        "CRMBRIDGE_CSV__COLUMNS maps 'Cell' to 'mobile', which [systems.csv.fields] does not map"
    )
    assert caught.value.hint == (
        "use one of email, first_name, last_name, company, job_title, phone, country, "
        'employees, industry, website, lead_source, or "" to ignore the column'
    )
