"""What marketing shows of crmbridge's decision never depends on timing.

Found by the fault-equivalence test: a lead's new engagement read one cycle after sales' verdict
(a fault delayed it) left HubSpot showing the old ``crmbridge_score``, while a clean run, reading
both in one cycle, wrote the new one with the verdict. A score crmbridge wrote to a marketing
record is now written again whenever it changes.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Loop, mql

pytestmark = pytest.mark.sandbox


def test_a_score_change_alone_reaches_the_score_crmbridge_showed(loop: Loop) -> None:
    loop.hubspot.control.control("seed_contacts", contacts=[mql("engaged@example.com")])
    loop.cycle()
    before = loop.contact("engaged@example.com")
    row = loop.bridge.store.lead("engaged@example.com")
    assert row is not None
    assert before["crmbridge_score"] == str(row.score)
    loop.hubspot.control.control(
        "add_engagement", email="engaged@example.com", page_views=40, email_clicks=5
    )
    result = loop.cycle()
    after = loop.bridge.store.lead("engaged@example.com")
    assert after is not None
    assert after.score != row.score
    assert result.counts.written_back == 2, "to HubSpot, and to Salesforce (an open handoff)"
    shown = loop.contact("engaged@example.com")
    assert shown["crmbridge_score"] == str(after.score)
    assert shown["crmbridge_why"] == after.why
    assert loop.cycle().counts.written_back == 0, "the echo of that write is not written again"
