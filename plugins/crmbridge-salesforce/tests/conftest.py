"""Shared helpers for the Salesforce sandbox tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Lead = dict[str, Any]


@pytest.fixture(scope="session")
def rsa_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair (private PEM, public PEM) for the JWT bearer flow."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def new_lead(salesforce_sandbox: SalesforceSandbox) -> Callable[..., str]:
    """Create a valid lead through the REST API; returns its id."""
    counter = iter(range(1_000_000))

    def create(**fields: Any) -> str:
        n = next(counter)
        data: Lead = {"LastName": f"Lead{n}", "Company": "Acme", "Email": f"lead{n}@acme.example"}
        data.update(fields)
        result = salesforce_sandbox.sf.Lead.create(data)
        assert result["success"] is True
        return str(result["id"])

    return create
