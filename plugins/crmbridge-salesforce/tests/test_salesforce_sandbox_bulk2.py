"""Bulk API 2.0 through ``sf.bulk2``: 50,000-record ingest and query round trips, and job states."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from simple_salesforce.exceptions import SalesforceOperationError

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

N = 50_000
JOBS = "https://crmbridge-sandbox.my.salesforce.com/services/data/v59.0/jobs"


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _leads(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "LastName": f"Bulk{i}",
            "Company": "Bulk Co",
            "Email": f"bulk{i}@bulk.example",
            "CrmBridge_Id__c": f"cb-{i}",
            "CrmBridge_Score__c": i % 100,
        }
        for i in range(start, start + n)
    ]


def test_insert_then_query_50k_leads(salesforce_sandbox: SalesforceSandbox, tmp_path: Path) -> None:
    records = _leads(N)
    records[10]["Status"] = "Not A Status"
    records[20]["LastName"] = ""
    sf = salesforce_sandbox.sf
    [job] = sf.bulk2.Lead.insert(records=records, wait=0.1)
    assert job["numberRecordsProcessed"] == N
    assert job["numberRecordsFailed"] == 2
    failed = _rows(sf.bulk2.Lead.get_failed_records(job["job_id"]))
    assert [(r["CrmBridge_Id__c"], r["sf__Id"]) for r in failed] == [("cb-10", ""), ("cb-20", "")]
    assert failed[0]["sf__Error"] == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Status: bad value for restricted picklist field: "
        "Not A Status:Status --"
    )
    assert failed[1]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    succeeded = _rows(sf.bulk2.Lead.get_successful_records(job["job_id"]))
    assert len(succeeded) == N - 2
    assert {r["sf__Created"] for r in succeeded} == {"true"}
    assert all(r["sf__Id"].startswith("00Q") for r in succeeded[:100])
    assert sf.bulk2.Lead.get_unprocessed_records(job["job_id"]).strip() != ""  # header only

    log = salesforce_sandbox.calls()
    assert log.count("PUT jobs/ingest/{id}/batches", status=201) == 1
    assert log.count("GET jobs/ingest/{id}") >= 2  # polled while the job ran
    assert log.records_in("PUT jobs/ingest") == N

    pages = list(
        sf.bulk2.Lead.query(
            "SELECT Id, CrmBridge_Id__c, CrmBridge_Score__c, Owner.Name FROM Lead",
            max_records=20_000,
            wait=0.1,
        )
    )
    rows = [row for page in pages for row in _rows(page)]
    assert [len(_rows(p)) for p in pages] == [20_000, 20_000, N - 2 - 40_000]
    assert len({r["Id"] for r in rows}) == N - 2
    assert rows[0]["Owner.Name"] == "crmbridge Integration"
    assert rows[0]["CrmBridge_Score__c"] == "0.0"
    locators = [
        c for c in salesforce_sandbox.calls() if c.endpoint == "GET jobs/query/{id}/results"
    ]
    assert len(locators) == 3

    downloaded = sf.bulk2.Lead.download(
        "SELECT Id FROM Lead WHERE CrmBridge_Score__c >= 50", path=str(tmp_path), wait=0.1
    )
    assert sum(d["number_of_records"] for d in downloaded) == N // 2 - 0
    assert Path(downloaded[0]["file"]).read_text().startswith('"Id"\n')


def test_upsert_50k_leads_updates_creates_and_reports_failures(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    existing = _leads(N // 2)
    salesforce_sandbox.control.control(
        "seed_records", object="Lead", records=existing, validate=False
    )
    changes = [{"CrmBridge_Id__c": f"CB-{i}", "Title": "Upserted"} for i in range(N // 2)]
    changes += [
        {"CrmBridge_Id__c": f"cb-{i}", "LastName": f"New{i}", "Company": "New Co", "Title": "New"}
        for i in range(N // 2, N)
    ]
    changes[3]["Title"] = "x" * 200
    changes[N // 2 + 7] = {"CrmBridge_Id__c": f"cb-{N // 2 + 7}", "Title": "no name"}
    sf = salesforce_sandbox.sf
    [job] = sf.bulk2.Lead.upsert(records=changes, external_id_field="CrmBridge_Id__c", wait=0.1)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (N, 2)
    everything = sf.bulk2.Lead.get_all_ingest_records(job["job_id"])
    created = [r for r in everything["successfulRecords"] if r["sf__Created"] == "true"]
    assert len(created) == N // 2 - 1
    errors = sorted(r["sf__Error"].split(":")[0] for r in everything["failedRecords"])
    assert errors == ["REQUIRED_FIELD_MISSING", "STRING_TOO_LONG"]
    assert everything["unprocessedRecords"] == []
    counted = sf.query("SELECT COUNT() FROM Lead WHERE Title = 'Upserted'")["totalSize"]
    assert counted == N // 2 - 1
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == N - 1


def test_update_by_id_clears_with_na_and_keeps_empty_cells(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ids = salesforce_sandbox.control.control(
        "seed_records", object="Lead", records=_leads(3), validate=False
    )["ids"]
    rows = [
        {"Id": ids[0], "Title": "Updated", "Email": ""},
        {"Id": ids[1], "Title": "#N/A", "Email": "#N/A"},
        {"Id": "00QDn00000000zzAAA", "Title": "Nobody", "Email": ""},
        {"Id": ids[2], "Title": "", "Email": "not-an-email"},
    ]
    sf = salesforce_sandbox.sf
    [job] = sf.bulk2.Lead.update(records=rows, wait=0.1)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (4, 2)
    errors = [
        r["sf__Error"].split(":")[0] for r in _rows(sf.bulk2.Lead.get_failed_records(job["job_id"]))
    ]
    assert errors == ["MALFORMED_ID", "INVALID_EMAIL_ADDRESS"]
    first, second = sf.Lead.get(ids[0]), sf.Lead.get(ids[1])
    assert (first["Title"], first["Email"]) == ("Updated", "bulk0@bulk.example")
    assert (second["Title"], second["Email"]) == (None, None)


def test_delete_hard_delete_and_query_all(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    ids = salesforce_sandbox.control.control(
        "seed_records", object="Lead", records=_leads(6), validate=False
    )["ids"]
    [soft] = sf.bulk2.Lead.delete(records=[{"Id": i} for i in ids[:3]], wait=0.1)
    assert (soft["numberRecordsProcessed"], soft["numberRecordsFailed"]) == (3, 0)
    [hard] = sf.bulk2.Lead.hard_delete(records=[{"Id": ids[3]}, {"Id": ids[0]}], wait=0.1)
    assert hard["numberRecordsFailed"] == 0
    live = [r for p in sf.bulk2.Lead.query("SELECT Id FROM Lead", wait=0.1) for r in _rows(p)]
    assert sorted(r["Id"] for r in live) == sorted(ids[4:])
    every = [
        r
        for p in sf.bulk2.Lead.query_all("SELECT Id, IsDeleted FROM Lead", wait=0.1)
        for r in _rows(p)
    ]
    assert sorted((r["Id"], r["IsDeleted"]) for r in every) == sorted(
        [(ids[1], "true"), (ids[2], "true"), (ids[4], "false"), (ids[5], "false")]
    )


def test_a_job_with_an_unknown_column_fails(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    with pytest.raises(SalesforceOperationError, match="Field name not found : Nope__c"):
        sf.bulk2.Lead.insert(records=[{"LastName": "L", "Company": "C", "Nope__c": "x"}], wait=0.1)
    [info] = [j for j in sf.restful("jobs/ingest")["records"] if j["state"] == "Failed"]
    unprocessed = sf.session.get(
        f"{JOBS}/ingest/{info['id']}/unprocessedrecords", headers=sf.headers
    )
    camel = sf.bulk2.Lead.get_unprocessed_records(info["id"])
    assert unprocessed.text == camel
    assert len(_rows(camel)) == 1


def test_job_state_machine_over_http(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    session, headers = sf.session, dict(sf.headers)
    job = sf.restful(
        "jobs/ingest",
        method="POST",
        json={"object": "Lead", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"},
    )
    assert job is not None
    assert (job["state"], job["object"], job["contentUrl"]) == (
        "Open",
        "Lead",
        f"services/data/v59.0/jobs/ingest/{job['id']}/batches",
    )
    assert job["id"].startswith("750")
    csv_headers = {**headers, "Content-Type": "text/csv"}
    upload = session.put(
        f"{JOBS}/ingest/{job['id']}/batches", data="LastName,Company\nA,B\n", headers=csv_headers
    )
    assert upload.status_code == 201
    early = session.get(f"{JOBS}/ingest/{job['id']}/successfulResults", headers=headers)
    assert early.status_code == 409
    closed = sf.restful(
        f"jobs/ingest/{job['id']}", method="PATCH", json={"state": "UploadComplete"}
    )
    assert closed is not None
    assert closed["state"] == "UploadComplete"
    again = session.put(f"{JOBS}/ingest/{job['id']}/batches", data="x", headers=csv_headers)
    assert (again.status_code, again.json()[0]["errorCode"]) == (409, "INVALIDJOBSTATE")
    in_progress = sf.restful(f"jobs/ingest/{job['id']}")
    assert in_progress is not None
    assert in_progress["state"] in {"InProgress", "JobComplete"}

    aborted = sf.restful(
        "jobs/ingest", method="POST", json={"object": "Lead", "operation": "insert"}
    )
    assert aborted is not None
    session.put(f"{JOBS}/ingest/{aborted['id']}/batches", data="LastName\nX\n", headers=csv_headers)
    gone = sf.restful(f"jobs/ingest/{aborted['id']}", method="PATCH", json={"state": "Aborted"})
    assert gone is not None
    assert gone["state"] == "Aborted"
    assert _rows(sf.bulk2.Lead.get_unprocessed_records(aborted["id"])) == [{"LastName": "X"}]
    assert session.delete(f"{JOBS}/ingest/{aborted['id']}", headers=headers).status_code == 204
    assert session.get(f"{JOBS}/ingest/{aborted['id']}", headers=headers).status_code == 404
    listed = sf.restful("jobs/ingest")
    assert listed is not None
    assert [j["id"] for j in listed["records"]] == [job["id"]]
    while (sf.restful(f"jobs/ingest/{job['id']}") or {})["state"] != "JobComplete":
        time.sleep(0.05)
    salesforce_sandbox.control.advance_clock(8 * 24 * 3600)
    sf.restful("jobs/ingest", method="POST", json={"object": "Lead", "operation": "insert"})
    listed = sf.restful("jobs/ingest")
    assert listed is not None
    assert job["id"] not in [j["id"] for j in listed["records"]]  # a week old: forgotten


def test_bad_job_requests(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    for body in (
        {"object": "Lead", "operation": "merge"},
        {"object": "Widget__c", "operation": "insert"},
        {"object": "Lead", "operation": "upsert", "externalIdFieldName": "Company"},
        {"object": "Lead", "operation": "insert", "columnDelimiter": "EMOJI"},
    ):
        answer = sf.session.post(f"{JOBS}/ingest", json=body, headers=sf.headers)
        assert (answer.status_code, answer.json()[0]["errorCode"]) == (400, "INVALIDJOB"), body
    bad_soql = sf.session.post(
        f"{JOBS}/query",
        json={"operation": "query", "query": "SELECT Nope FROM Lead"},
        headers=sf.headers,
    )
    assert bad_soql.json()[0]["errorCode"] == "INVALID_FIELD"
    job = sf.session.post(
        f"{JOBS}/query",
        json={"operation": "query", "query": "SELECT Id FROM Lead"},
        headers=sf.headers,
    ).json()
    bad_locator = sf.session.get(
        f"{JOBS}/query/{job['id']}/results", params={"locator": "!!"}, headers=sf.headers
    )
    assert bad_locator.status_code in {400, 409}


def test_partial_fault_locks_rows_of_an_upload(salesforce_sandbox: SalesforceSandbox) -> None:
    salesforce_sandbox.control.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, probability=1.0, fail_share=0.1, path="batches$")],
        seed=5,
    )
    [job] = salesforce_sandbox.sf.bulk2.Lead.insert(records=_leads(200), wait=0.1)
    assert 0 < job["numberRecordsFailed"] < 200
    failed = _rows(salesforce_sandbox.sf.bulk2.Lead.get_failed_records(job["job_id"]))
    assert {r["sf__Error"].split(":")[0] for r in failed} == {"UNABLE_TO_LOCK_ROW"}
