"""The example plugins at work in the sync engine: crmbridge-routing assigns owners by territory
and in turn, crmbridge-webhook posts the rejected-lead digest and the SLA breaches, signed, to a
real local HTTP server — over cycles on the in-memory marketing and sales systems."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from crmbridge_routing import RoutingPlugin
from crmbridge_webhook import WebhookPlugin, signature

from crmbridge import load_settings
from crmbridge.app import CrmBridge
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

SECRET = "whsec-example"


@dataclass
class Receiver:
    """A webhook endpoint on the loopback interface, keeping every post."""

    server: ThreadingHTTPServer
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/crm-events"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(body) for h, body in self.posts if h["X-Crmbridge-Event"] == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            holder[0].posts.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the test reads the posts, not access logs

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()
    thread.join(5)


class Clock:
    """The memory world's clock, moved by hand."""

    def __init__(self, world: memory.MemoryWorld) -> None:
        self.world = world

    def __call__(self) -> datetime:
        return self.world.now()


@pytest.fixture
def runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> Iterator[PipelineRunner]:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)
    world = memory.memory_world("example-plugins", fresh=True)
    env = tmp_path / "crmbridge.env"
    env.write_text(
        f"CRMBRIDGE_DATABASE_URL=sqlite:///{tmp_path / 'store.sqlite3'}\n"
        f"CRMBRIDGE_DEFINITION={Path(__file__).parents[2] / 'configs' / 'lead-definition.toml'}\n"
        "CRMBRIDGE_PIPELINE__MARKETING=memory_marketing\n"
        "CRMBRIDGE_PIPELINE__SALES=memory_sales\n"
        "CRMBRIDGE_MEMORY_MARKETING__WORLD=example-plugins\n"
        "CRMBRIDGE_MEMORY_SALES__WORLD=example-plugins\n"
        'CRMBRIDGE_ROUTING__TERRITORIES=\'{"NA": ["US", "CA"], "EMEA": ["GB", "DE"]}\'\n'
        'CRMBRIDGE_ROUTING__OWNERS=\'{"NA": ["anna@acme.example", "ben@acme.example"]}\'\n'
        'CRMBRIDGE_ROUTING__QUEUES=\'{"EMEA": "emea-inbound"}\'\n'
        "CRMBRIDGE_ROUTING__DEFAULT_QUEUE=unrouted-leads\n"
        f"CRMBRIDGE_WEBHOOK__URL={receiver.url}\n"
        f"CRMBRIDGE_WEBHOOK__SECRET={SECRET}\n",
        encoding="utf-8",
    )
    env.chmod(0o600)
    bridge = CrmBridge(
        load_settings([env]),
        entrypoints=False,
        extra_plugins=[
            ("memory", memory),
            ("routing", RoutingPlugin()),
            ("webhook", WebhookPlugin()),
        ],
        clock=Clock(world),
    )
    r = PipelineRunner(bridge)
    yield r
    r.close()


def contact(email: str, country: str) -> dict[str, Any]:
    """A marketing contact that qualifies as an MQL under the example definition."""
    return {
        "email": email,
        "firstname": "Grace",
        "lastname": "Hopper",
        "company": "Navy Labs",
        "jobtitle": "VP of Engineering",
        "industry": "Software",
        "numemployees": "500-1000",
        "country": country,
        "lead_source": "webinar",
        "hs_analytics_num_page_views": 20,
        "hs_email_click": 5,
        "lifecyclestage": "lead",
    }


def test_routing_and_webhook_plugins_in_sync_cycles(
    runner: PipelineRunner, receiver: Receiver
) -> None:
    world = memory.memory_world("example-plugins")
    leads = [("us1@x.example", "US"), ("us2@x.example", "US"), ("ca1@x.example", "CA"),
             ("gb1@x.example", "GB"), ("br1@x.example", "BR")]  # fmt: skip
    for email, country in leads:
        world.marketing_add(**contact(email, country))

    first = runner.run_cycle()
    assert first.status == "ok", first.error
    assert first.counts.handed_off == 5
    owners = {email: world.sales_get(email)["OwnerId"] for email, _ in leads}
    assert owners == {
        "us1@x.example": "anna@acme.example",
        "us2@x.example": "ben@acme.example",
        "ca1@x.example": "anna@acme.example",
        "gb1@x.example": "emea-inbound",
        "br1@x.example": "unrouted-leads",
    }
    stored = runner.store.lead("us2@x.example")
    assert stored is not None
    journey = runner.store.journey(stored.id)
    handed = [e for e in journey if e.kind == "handed_off"]
    assert handed
    assert handed[0].data["route"] == (
        "territory NA (country US): round robin, turn 2, owner 2 of 2"
    )
    assert receiver.posts == [], "no rejection and no breach yet: nothing posted"

    world.sales_set_status("us1@x.example", "Closed - Not Converted", "No Budget")
    world.sales_set_status("ca1@x.example", "Working - Contacted")
    second = runner.run_cycle()
    assert second.counts.outcomes == 2
    [digest] = receiver.events("rejected_digest")
    assert (digest["count"], digest["run_id"]) == (1, second.run_id)
    [rejected] = digest["leads"]
    assert (rejected["email"], rejected["reason"], rejected["owner"]) == (
        "us1@x.example",
        "no_budget",
        "anna@acme.example",
    )

    world.advance(timedelta(hours=25).total_seconds())
    third = runner.run_cycle()
    assert third.counts.sla_breaches == 3
    breaches = receiver.events("sla_breached")
    assert sorted(b["lead"]["email"] for b in breaches) == [
        "br1@x.example",
        "gb1@x.example",
        "us2@x.example",
    ]
    assert {b["handoff"]["owner"] for b in breaches} == {
        "ben@acme.example",
        "emea-inbound",
        "unrouted-leads",
    }
    for headers, body in receiver.posts:
        assert headers["X-Crmbridge-Signature"] == signature(SECRET, body)
    assert [h["X-Crmbridge-Delivery"].split("-")[0] for h, _ in receiver.posts] == [
        "digest",
        "sla",
        "sla",
        "sla",
    ]
