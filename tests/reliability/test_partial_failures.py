"""Partial batch failures: the records a system could not write just now are quarantined with a
message naming the record, the field and the code, the rest of the batch flows on, and crmbridge
writes them again at the next cycle by itself; a refusal that will happen again waits for a person.
"""

from __future__ import annotations

import pytest

from crmbridge.testing.sandbox import FaultKind, FaultRule
from tests.e2e.conftest import Loop, mql

pytestmark = pytest.mark.sandbox

COMPOSITE = r"/composite/sobjects"


def _partial(path: str, *, code: str | None = None) -> FaultRule:
    """Every record of the first matching batch fails (``fail_share`` 1)."""
    return FaultRule(kind=FaultKind.PARTIAL, path=path, on_calls=(1,), fail_share=1.0, code=code)


def test_a_handoff_salesforce_could_not_take_just_now_goes_at_the_next_cycle(loop: Loop) -> None:
    loop.hubspot.control.control(
        "seed_contacts", contacts=[mql("locked@example.com"), mql("fine@example.com")]
    )
    loop.salesforce.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, path=COMPOSITE, on_calls=(1,), fail_share=0.5)]
    )
    first = loop.cycle()
    assert first.counts.handed_off + first.counts.quarantined == 2
    assert first.counts.quarantined >= 1
    [entry] = loop.bridge.store.quarantined(status="retry")
    assert entry.stage == "handoff"
    assert entry.rule == "UNABLE_TO_LOCK_ROW"
    assert f"handoff of {entry.email} to salesforce failed" in entry.error
    assert "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access" in entry.error
    assert loop.bridge.store.quarantined() == [], "nothing waits for a person"
    second = loop.cycle()
    assert second.counts.handed_off == first.counts.quarantined
    for email in ("locked@example.com", "fine@example.com"):
        assert len(loop.sf_leads(email)) == 1
    assert loop.bridge.store.quarantined(status="retry") == []
    assert [q.status for q in loop.bridge.store.quarantined(status="resolved")] == ["resolved"]


def test_a_write_back_hubspot_failed_on_one_record_goes_again_at_the_next_cycle(
    loop: Loop,
) -> None:
    loop.hubspot.control.control("seed_contacts", contacts=[mql("accepted@example.com")])
    loop.cycle()
    [lead] = loop.sf_leads("accepted@example.com")
    loop.salesforce.control.control(
        "set_lead_status", lead_id=lead["Id"], status="Working - Contacted"
    )
    loop.hubspot.set_faults([_partial(r"/batch/update$")])
    result = loop.cycle()
    assert (result.counts.outcomes, result.counts.quarantined) == (1, 1)
    assert loop.contact("accepted@example.com").get("crmbridge_outcome") in (None, "")
    [entry] = loop.bridge.store.quarantined(status="retry")
    assert entry.stage == "marketing update"
    assert entry.rule == "INTERNAL_ERROR"
    assert "hubspot refused the update of accepted@example.com" in entry.error
    assert "The write of this record failed; retry it." in entry.error
    row = loop.bridge.store.lead("accepted@example.com")
    assert row is not None
    assert row.marketing_dirty, "the lead still waits for its write-back"
    again = loop.cycle()
    assert again.counts.written_back >= 1
    assert loop.contact("accepted@example.com")["crmbridge_outcome"] == "accepted"
    assert loop.bridge.store.quarantined(status="retry") == []


def test_a_refusal_that_would_happen_again_waits_for_a_person(loop: Loop) -> None:
    loop.hubspot.control.control("seed_contacts", contacts=[mql("refused@example.com")])
    loop.salesforce.set_faults([_partial(COMPOSITE, code="FIELD_CUSTOM_VALIDATION_EXCEPTION")])
    assert loop.cycle().counts.quarantined == 1
    [entry] = loop.bridge.store.quarantined()
    assert (entry.stage, entry.rule, entry.email) == (
        "handoff",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "refused@example.com",
    )
    before = len(loop.salesforce.calls())
    assert loop.cycle().counts.handed_off == 0, "not retried without a person"
    assert not [c for c in loop.salesforce.calls().snapshot()[before:] if "composite" in c.path]
    assert loop.sf_leads("refused@example.com") == []
