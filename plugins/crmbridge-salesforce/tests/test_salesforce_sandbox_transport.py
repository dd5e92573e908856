"""The transport adapter: every HTTPS host lands on the sandbox, with a default timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.transport import SandboxAdapter, sandbox_session

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize(
    ("url", "rewritten"),
    [
        ("https://login.salesforce.com/services/oauth2/token", "/services/oauth2/token"),
        ("https://test.salesforce.com/services/Soap/u/59.0", "/services/Soap/u/59.0"),
        (
            "https://acme.my.salesforce.com/services/data/v59.0/query/?q=SELECT+Id+FROM+Lead",
            "/services/data/v59.0/query/?q=SELECT+Id+FROM+Lead",
        ),
        (
            "https://na1.salesforce.com:8443/services/data/v59.0/sobjects/Lead/Ext__c/a%2Fb",
            "/services/data/v59.0/sobjects/Lead/Ext__c/a%2Fb",
        ),
    ],
)
def test_urls_are_rewritten_keeping_path_and_query(url: str, rewritten: str) -> None:
    adapter = SandboxAdapter("http://127.0.0.1:8123")
    assert adapter.rewrite(url) == "http://127.0.0.1:8123" + rewritten
    prefixed = SandboxAdapter("http://127.0.0.1:8123/sf/")
    assert prefixed.rewrite(url) == "http://127.0.0.1:8123/sf" + rewritten


def test_a_bad_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="must look like http://host:port"):
        SandboxAdapter("127.0.0.1:8123")


def test_requests_carry_the_original_host(salesforce_sandbox: SalesforceSandbox) -> None:
    session = sandbox_session(salesforce_sandbox.url)
    answer = session.get("https://anything.my.salesforce.com/services/data")
    assert answer.status_code == 200
    assert answer.request.headers["X-Forwarded-Host"] == "anything.my.salesforce.com"
    assert answer.url.startswith(salesforce_sandbox.url)
    assert session.trust_env is False


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_default_read_timeout_applies(silent_server: str) -> None:
    session = sandbox_session(silent_server, timeout=(1.0, 0.2))
    with pytest.raises(requests.ReadTimeout):
        session.get("https://login.salesforce.com/services/data")
    with pytest.raises(requests.ReadTimeout):
        session.get("https://login.salesforce.com/services/data", timeout=(1.0, 0.1))
