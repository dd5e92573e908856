"""The webhook plugin against a real HTTP server on the loopback interface: bodies, signatures,
retries, failures that never reach the cycle, dry runs, and nothing at all until configured."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from crmbridge_webhook import WebhookPlugin, signature

from crmbridge import (
    Handoff,
    HookContext,
    Lead,
    LeadDefinition,
    Outcome,
    OutcomeKind,
    RunCounts,
    SettingsError,
    load_settings,
)
from crmbridge.app import default_definition_path
from crmbridge.plugins import PluginManager, make_plugin_manager

DEFINITION = LeadDefinition.load(default_definition_path())
SECRET = "whsec-4f1c2b"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every request and answers with the next planned status."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/T0KEN"

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        for status in statuses:
            self.statuses.append(status if isinstance(status, tuple) else (status, {}))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder[0]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            me.requests.append(Received(self.path, dict(self.headers.items()), body))
            if me.delay:
                time.sleep(me.delay)
            status, headers = me.statuses.pop(0) if me.statuses else (204, {})
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the test asserts on what was received, not on access logs

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)


MakeContext = Callable[..., HookContext]


@pytest.fixture
def make_context(tmp_path: Path) -> MakeContext:
    def make(values: dict[str, str], *, dry_run: bool = False, run_id: str = "run1") -> HookContext:
        env = tmp_path / f"webhook-{len(list(tmp_path.iterdir()))}.env"
        env.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
        env.chmod(0o600)
        return HookContext(
            settings=load_settings([env]),
            definition=DEFINITION,
            run_id=run_id,
            pipeline="acme",
            dry_run=dry_run,
            now=lambda: NOW,
        )

    return make


def configured(receiver: Receiver, **more: str) -> dict[str, str]:
    return {
        "CRMBRIDGE_WEBHOOK__URL": receiver.url,
        "CRMBRIDGE_WEBHOOK__SECRET": SECRET,
        "CRMBRIDGE_WEBHOOK__BACKOFF_SECONDS": "0",
        **more,
    }


def manager(plugin: WebhookPlugin) -> PluginManager:
    return make_plugin_manager(entrypoints=False, extra=[("webhook", plugin)])


def ada() -> Lead:
    lead = Lead.from_fields(
        {"email": "ada@analytical.example", "company": "Analytical Engines", "country": "GB"}
    )
    lead.stage = "mql"
    lead.score = 72
    return lead


def handoff(**changes: Any) -> Handoff:
    values: dict[str, Any] = {
        "lead_email": "ada@analytical.example",
        "sales_system": "salesforce",
        "native_id": "00Q000000000001",
        "handed_off_at": NOW - timedelta(hours=2),
        "sla_due_at": NOW - timedelta(hours=1),
        "owner": "anna@acme.example",
        "sla_breached_at": NOW,
        "id": 41,
    }
    values.update(changes)
    return Handoff(**values)


def rejection(
    reason: str | None = "no_budget", kind: OutcomeKind = OutcomeKind.REJECTED
) -> Outcome:
    return Outcome(
        kind,
        "salesforce",
        "00Q000000000001",
        NOW - timedelta(minutes=5),
        email="ada@analytical.example",
        reason=reason,
        native_value="Closed - Not Converted",
        owner="anna@acme.example",
    )


def test_inert_without_a_url(receiver: Receiver, make_context: MakeContext) -> None:
    pm = manager(WebhookPlugin())
    ctx = make_context({"CRMBRIDGE_WEBHOOK__SECRET": SECRET})
    pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff())
    pm.hook.crm_handoff_outcome(ctx=ctx, lead=ada(), handoff=handoff(), outcome=rejection())
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    assert receiver.requests == []


def test_an_sla_breach_is_posted_signed(receiver: Receiver, make_context: MakeContext) -> None:
    pm = manager(WebhookPlugin())
    ctx = make_context(configured(receiver))
    pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff())
    [request] = receiver.requests
    assert request.path == "/hooks/T0KEN"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Crmbridge-Event"] == "sla_breached"
    assert request.headers["X-Crmbridge-Delivery"] == "sla-41"
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Crmbridge-Signature"] == expected
    assert signature(SECRET, request.body) == expected
    assert request.json() == {
        "event": "sla_breached",
        "pipeline": "acme",
        "run_id": "run1",
        "sent_at": "2026-11-23T12:00:00+00:00",
        "lead": {
            "email": "ada@analytical.example",
            "stage": "mql",
            "score": 72,
            "first_name": None,
            "last_name": None,
            "company": "Analytical Engines",
            "job_title": None,
            "country": "GB",
            "lead_source": None,
        },
        "handoff": {
            "id": 41,
            "sales_system": "salesforce",
            "native_id": "00Q000000000001",
            "owner": "anna@acme.example",
            "handed_off_at": "2026-11-23T10:00:00+00:00",
            "sla_due_at": "2026-11-23T11:00:00+00:00",
            "sla_breached_at": "2026-11-23T12:00:00+00:00",
            "minutes_late": 60.0,
        },
    }


def test_without_a_secret_there_is_no_signature(
    receiver: Receiver, make_context: MakeContext
) -> None:
    values = {k: v for k, v in configured(receiver).items() if not k.endswith("SECRET")}
    manager(WebhookPlugin()).hook.crm_sla_breached(
        ctx=make_context(values), lead=ada(), handoff=handoff()
    )
    [request] = receiver.requests
    assert "X-Crmbridge-Signature" not in request.headers


def test_rejections_are_posted_as_one_digest_when_the_cycle_finishes(
    receiver: Receiver, make_context: MakeContext
) -> None:
    pm = manager(WebhookPlugin())
    ctx = make_context(configured(receiver))
    other = make_context(configured(receiver), run_id="run2")
    pm.hook.crm_handoff_outcome(ctx=ctx, lead=ada(), handoff=handoff(), outcome=rejection())
    accepted = rejection(None, OutcomeKind.ACCEPTED)
    pm.hook.crm_handoff_outcome(ctx=ctx, lead=ada(), handoff=handoff(), outcome=accepted)
    pm.hook.crm_handoff_outcome(ctx=other, lead=ada(), handoff=handoff(), outcome=rejection())
    assert receiver.requests == [], "nothing is posted before the cycle finishes"
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts(outcomes=2))
    [request] = receiver.requests
    assert request.headers["X-Crmbridge-Event"] == "rejected_digest"
    assert request.headers["X-Crmbridge-Delivery"] == "digest-run1"
    assert request.headers["X-Crmbridge-Signature"] == signature(SECRET, request.body)
    body = request.json()
    assert {k: body[k] for k in ("event", "pipeline", "run_id", "count", "listed")} == {
        "event": "rejected_digest",
        "pipeline": "acme",
        "run_id": "run1",
        "count": 1,
        "listed": 1,
    }
    [entry] = body["leads"]
    assert entry["email"] == "ada@analytical.example"
    assert entry["reason"] == "no_budget"
    assert entry["reason_label"] == "No budget"
    assert entry["native_value"] == "Closed - Not Converted"
    assert entry["owner"] == "anna@acme.example"
    assert entry["rejected_at"] == "2026-11-23T11:55:00+00:00"
    # a cycle without rejections posts nothing; the other run's digest is its own
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    assert len(receiver.requests) == 1
    pm.hook.crm_cycle_finished(ctx=other, counts=RunCounts())
    assert [r.json()["run_id"] for r in receiver.requests] == ["run1", "run2"]


def test_the_digest_lists_at_most_digest_limit_leads(
    receiver: Receiver, make_context: MakeContext
) -> None:
    pm = manager(WebhookPlugin())
    ctx = make_context(configured(receiver, CRMBRIDGE_WEBHOOK__DIGEST_LIMIT="2"))
    for _ in range(3):
        pm.hook.crm_handoff_outcome(ctx=ctx, lead=ada(), handoff=handoff(), outcome=rejection())
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    body = receiver.requests[0].json()
    assert (body["count"], body["listed"], len(body["leads"])) == (3, 2, 2)


def test_transient_answers_are_retried(receiver: Receiver, make_context: MakeContext) -> None:
    waits: list[float] = []
    pm = manager(WebhookPlugin(sleep=waits.append))
    receiver.answer(503, (429, {"Retry-After": "2"}), 200)
    ctx = make_context(configured(receiver))
    pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff())
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1, "a retry posts the same body"
    assert waits[1] == 2.0, "Retry-After is honoured"


def test_a_failed_post_is_logged_and_never_raised(
    receiver: Receiver, make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    pm = manager(WebhookPlugin(sleep=lambda _s: None))
    receiver.answer(500, 500, 500, 500)
    ctx = make_context(configured(receiver))
    with caplog.at_level(logging.ERROR, logger="crmbridge.plugins.webhook"):
        pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff())
        assert len(receiver.requests) == 3, "three attempts (the default)"
        # once a post failed in a cycle, the next ones of that cycle are tried once
        pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff(id=42))
        assert len(receiver.requests) == 4
    [first, second] = [r.getMessage() for r in caplog.records]
    host = receiver.url.split("/hooks")[0]
    assert first.startswith(f"webhook: sla_breached sla-41 not delivered to {host}/…: ")
    assert first.endswith(f"webhook {host}/… answered 500; the cycle goes on")
    assert "T0KEN" not in first, "the path of the URL (often a token) is never logged"
    assert second.startswith("webhook: sla_breached sla-42 not delivered")
    # the next cycle tries with retries again
    receiver.answer(500, 200)
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    pm.hook.crm_sla_breached(ctx=make_context(configured(receiver), run_id="run2"), lead=ada(),
                             handoff=handoff(id=43))  # fmt: skip
    assert len(receiver.requests) == 6


def test_a_refusal_is_not_retried(
    receiver: Receiver, make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    pm = manager(WebhookPlugin(sleep=lambda _s: None))
    receiver.answer(401)
    with caplog.at_level(logging.ERROR, logger="crmbridge.plugins.webhook"):
        pm.hook.crm_sla_breached(
            ctx=make_context(configured(receiver)), lead=ada(), handoff=handoff()
        )
    assert len(receiver.requests) == 1
    assert "refused the post with 401" in caplog.text
    assert "CRMBRIDGE_WEBHOOK__SECRET" in caplog.text


def test_an_unreachable_endpoint_is_logged(
    make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    values = {
        "CRMBRIDGE_WEBHOOK__URL": f"http://127.0.0.1:{port}/hook",
        "CRMBRIDGE_WEBHOOK__ATTEMPTS": "2",
    }
    plugin = WebhookPlugin(sleep=lambda _s: None)
    with caplog.at_level(logging.ERROR, logger="crmbridge.plugins.webhook"):
        plugin.crm_sla_breached(make_context(values), ada(), handoff())
    assert f"webhook http://127.0.0.1:{port}/… cannot be reached" in caplog.text


def test_a_dry_run_posts_nothing(
    receiver: Receiver, make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    pm = manager(WebhookPlugin())
    ctx = make_context(configured(receiver), dry_run=True)
    with caplog.at_level(logging.INFO, logger="crmbridge.plugins.webhook"):
        pm.hook.crm_sla_breached(ctx=ctx, lead=ada(), handoff=handoff())
        pm.hook.crm_handoff_outcome(ctx=ctx, lead=ada(), handoff=handoff(), outcome=rejection())
        pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    assert receiver.requests == []
    assert "dry run: would post sla_breached (sla-41)" in caplog.text
    assert "dry run: would post rejected_digest (digest-run1)" in caplog.text


def test_a_bad_url_is_named(make_context: MakeContext) -> None:
    ctx = make_context({"CRMBRIDGE_WEBHOOK__URL": "hooks.example/crm"})
    with pytest.raises(SettingsError) as caught:
        WebhookPlugin().crm_sla_breached(ctx, ada(), handoff())
    assert "CRMBRIDGE_WEBHOOK__URL: Value error, must be an http:// or https:// address" in str(
        caught.value
    )


def test_a_redirect_is_not_followed(
    receiver: Receiver, make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer((301, {"Location": "https://elsewhere.example/hook"}))
    with caplog.at_level(logging.ERROR, logger="crmbridge.plugins.webhook"):
        WebhookPlugin().crm_sla_breached(make_context(configured(receiver)), ada(), handoff())
    assert len(receiver.requests) == 1
    assert "answered 301 (a redirect); crmbridge does not follow redirects for a POST" in (
        caplog.text
    )
    assert "set CRMBRIDGE_WEBHOOK__URL to the final address" in caplog.text


def test_a_slow_endpoint_times_out(
    receiver: Receiver, make_context: MakeContext, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.delay = 0.5
    values = configured(
        receiver, CRMBRIDGE_WEBHOOK__TIMEOUT_SECONDS="0.1", CRMBRIDGE_WEBHOOK__ATTEMPTS="1"
    )
    with caplog.at_level(logging.ERROR, logger="crmbridge.plugins.webhook"):
        WebhookPlugin().crm_sla_breached(make_context(values), ada(), handoff())
    host = receiver.url.split("/hooks")[0]
    assert f"webhook {host}/… did not answer within 0.1 s" in caplog.text
    assert "raise CRMBRIDGE_WEBHOOK__TIMEOUT_SECONDS or check the receiver" in caplog.text
