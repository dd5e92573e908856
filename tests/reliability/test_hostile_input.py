"""Hostile input, driven from the corpus in ``corpus/`` through the HubSpot sandbox, the engine,
the Salesforce sandbox and the HTML report.

Nothing crashes; each bad record is quarantined with a message naming the record and the field,
while the good records of the same batch flow on; valid unicode reaches Salesforce byte for byte
and stays as it was in HubSpot; emails with SOQL's metacharacters are looked up exactly (no query
is built by concatenation: see ``test_soql_is_never_concatenated.py``); the HTML report escapes
every value and keeps a spreadsheet from reading one as a formula.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.definition import LeadDefinition
from crmbridge.lead import normalize_email
from crmbridge.report import build_report, render_html
from crmbridge.settings import load_settings
from crmbridge.values import is_valid_email
from tests.e2e.conftest import Loop, mql

pytestmark = pytest.mark.sandbox

CORPUS = Path(__file__).parent / "corpus"
ROTATION = ("firstname", "lastname", "company", "jobtitle", "industry", "country", "lead_source")
SHARED = {
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "job_title",
    "industry": "industry",
    "country": "country",
    "lead_source": "lead_source",
}
SALESFORCE = {
    "firstname": "FirstName",
    "lastname": "LastName",
    "company": "Company",
    "jobtitle": "Title",
    "industry": "Industry",
    "country": "Country",
    "lead_source": "LeadSource",
}
MEGABYTE = "M" * (1024 * 1024)
CONTROL = {
    "firstname": "Ann\x00e",
    "lastname": "\x1b[31mRed\x1b[0m",
    "company": "Acme\x07 Corp",
    "jobtitle": "VP\x7f Sales",
}
METACHARACTER_EMAILS = (
    "o'reilly@example.com",
    "first.o'hara+news@example.co.uk",
    "a_b%c@example.com",
    '"odd\'quote"@example.com',
)
FREE_TEXT_SOURCE = """
[fields.lead_source]
type = "string"
max_length = 255
owner = "marketing"
"""


def corpus(name: str) -> list[str]:
    """The values of a corpus file (comment lines, ``# ...``, and blank lines left out)."""
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not (line == "#" or line.startswith("# "))]


def qualifying(email: str, **properties: str) -> dict[str, Any]:
    """A HubSpot contact that qualifies as an MQL whichever one field is replaced."""
    return mql(email, hs_analytics_num_page_views="30", hs_email_click="5", **properties)


def definition_with_free_text_source() -> LeadDefinition:
    """The example definition with ``lead_source`` as free text in both systems, so hostile values
    of it reach Salesforce, the store and the report (as a portal without a picklist for it would
    send them)."""
    text = default_definition_path().read_text(encoding="utf-8")
    for header in (
        "[fields.lead_source]",
        "[systems.hubspot.picklists.lead_source]",
        '[systems.salesforce.picklists."Lead.LeadSource"]',
    ):
        block = re.compile(re.escape(header) + r"\n(?:[^\[\n][^\n]*\n|\n(?!\[))*")
        text, count = block.subn("", text)
        assert count == 1, header
    return LeadDefinition.from_text(text + FREE_TEXT_SOURCE)


@pytest.fixture
def hostile(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> Loop:
    """The loop with ``lead_source`` free text and every handoff through Bulk API 2.0 (whose
    duplicates are looked up by email with SOQL)."""
    monkeypatch.setenv("CRMBRIDGE_SALESFORCE__BULK_THRESHOLD", "1")
    monkeypatch.setenv("CRMBRIDGE_SALESFORCE__BULK_POLL_SECONDS", "0.05")
    loop.bridge = CrmBridge(
        load_settings(), clock=loop.clock, definition=definition_with_free_text_source()
    )
    return loop


@pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True, bulk_job_delay_seconds=0.05)
def test_hostile_values_in_every_field(hostile: Loop) -> None:
    loop = hostile
    contacts: dict[str, dict[str, str]] = {}
    expected_bad: dict[str, str] = {}
    for i, value in enumerate(corpus("naughty_strings.txt")):
        field = ROTATION[i % len(ROTATION)]
        contacts[f"naughty{i}@example.com"] = qualifying(
            f"naughty{i}@example.com", **{field: value}
        )
    for i, field in enumerate(("company", "jobtitle", "lead_source", "firstname")):
        email = f"huge{i}@example.com"
        contacts[email] = qualifying(email, **{field: MEGABYTE})
        expected_bad[email] = SHARED[field]
    for i, (field, value) in enumerate(CONTROL.items()):
        email = f"control{i}@example.com"
        contacts[email] = qualifying(email, **{field: value})
        expected_bad[email] = SHARED[field]
    for i, email in enumerate(corpus("emails_invalid.txt")):
        contacts[f"invalid {i}"] = qualifying(email)
        expected_bad[f"invalid {i}"] = "email"
    for email in corpus("emails_valid.txt"):
        contacts[email] = qualifying(email)
    loop.salesforce.control.control(
        "seed_records",
        object="Lead",
        records=[
            {"LastName": "Existing", "Company": "Old", "Email": e} for e in METACHARACTER_EMAILS
        ],
    )
    ids = loop.hubspot.control.control("seed_contacts", contacts=list(contacts.values()))
    hubspot_id = dict(zip(contacts, ids, strict=True))

    first = loop.cycle()
    second = loop.cycle()
    assert first.status == second.status == "ok"

    store = loop.bridge.store
    quarantined = {q.native_id: q for q in store.quarantined()}
    # Each bad record is quarantined at reading, naming the record and the field.
    for key, field in expected_bad.items():
        entry = quarantined.get(hubspot_id[key])
        assert entry is not None, f"{key} ({field}) was not quarantined"
        assert entry.field == field, (key, entry.field, entry.error)
        assert f"hubspot record {hubspot_id[key]}" in entry.error
        assert field in entry.error
        assert len(entry.error) < 2000, "the message quotes a clipped value, not a megabyte"
    # The good records of the same batches flowed on, byte for byte.
    handed = 0
    for key, properties in contacts.items():
        if key in expected_bad:
            continue
        email = properties["email"]
        row = store.lead(normalize_email(email))
        entry = quarantined.get(hubspot_id[key])
        if row is None:
            assert entry is not None, f"{key!r}: neither taken in nor quarantined"
            assert entry.field, entry.error
            continue
        shown = loop.hubspot.control.control("get_contact", email=email)["properties"]
        for name in SHARED:
            assert shown.get(name) == properties[name], f"HubSpot's {name} of {key!r} changed"
        if entry is not None:
            # Refused by Salesforce (a field it checks differently): named, and nothing else.
            assert entry.stage == "handoff", entry.error
            assert entry.field, entry.error
            continue
        [lead] = loop.sf_leads(row.email)
        handed += 1
        for name, sf_name in SALESFORCE.items():
            value = row.fields[SHARED[name]]
            assert lead[sf_name] == value, f"{key!r}: Salesforce {sf_name} {lead[sf_name]!r}"
            if value == value.strip():
                assert value == properties[name], f"{key!r}: {name} changed on the way"
    assert handed > 80
    assert first.counts.handed_off >= handed - len(METACHARACTER_EMAILS)
    # Emails with SOQL's metacharacters found exactly their own lead (adopted, not duplicated).
    for email in METACHARACTER_EMAILS:
        [lead] = loop.sf_leads(email)
        assert lead["LastName"] == "Hopper"
        assert lead["CrmBridge_Id__c"]
    queries = [c for c in loop.salesforce.calls() if c.endpoint == "GET query"]
    assert queries
    assert all(c.status == 200 for c in queries), [c.status for c in queries]


@pytest.mark.parametrize("email", corpus("emails_valid.txt"))
def test_exotic_valid_emails_are_valid(email: str) -> None:
    assert is_valid_email(email)


@pytest.mark.parametrize("email", corpus("emails_invalid.txt"))
def test_invalid_emails_are_invalid(email: str) -> None:
    assert not is_valid_email(email)


def test_the_html_report_escapes_every_value_and_defuses_formulas(
    hostile: Loop,
) -> None:
    loop = hostile
    values = corpus("naughty_strings.txt")
    hostile_sources = [v for v in values if v.strip() == v and 0 < len(v) <= 255]
    loop.hubspot.control.control(
        "seed_contacts",
        contacts=[
            qualifying(f"report{i}@example.com", lead_source=v)
            for i, v in enumerate(hostile_sources)
        ],
    )
    loop.cycle()
    report = build_report(loop.bridge.store, loop.bridge.definition, "default", loop.clock())
    page = render_html(report)
    assert set(hostile_sources) <= set(report.by_source)
    assert len(re.findall(r"<svg\b", page)) == 1, "only the report's own funnel chart"
    # No cell holds markup: every <, >, quote and & of a value is an entity.
    for raw in re.findall(r"<td>(.*?)</td>", page, re.DOTALL):
        assert not re.search(r"[<>\"']|&(?!(?:amp|lt|gt|quot|#x27);)", raw), raw
    for value in hostile_sources:
        cell = _cell_of(page, value)
        assert cell is not None, f"{value!r} is not in the report"
        if value[0] in "=+-@" and not re.fullmatch(r"[-+]?[0-9.,]+%?", value):
            assert cell.startswith("'"), f"{value!r} would be read as a formula: {cell!r}"


def _cell_of(page: str, value: str) -> Any:
    """The text of the table cell showing ``value`` (unescaped), or ``None``."""
    for raw in re.findall(r"<td>(.*?)</td>", page, re.DOTALL):
        text = html.unescape(raw)
        if text in (value, "'" + value):
            return text
    return None
