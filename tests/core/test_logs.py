"""Log lines: secrets redacted at every level, emails at INFO and above, text and JSON format."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from crmbridge.logs import configure_logging, fields, redact, register_secret, register_secrets_of
from crmbridge.settings import load_settings

SECRET = "tok-7f3a9c1e55d24b0b"
EMAIL = "jane.doe@acme.example"


def capture(level: str = "DEBUG", fmt: str = "text") -> tuple[logging.Logger, io.StringIO]:
    """crmbridge's logging sent to a string buffer; a logger under ``crmbridge``."""
    stream = io.StringIO()
    configure_logging(level, fmt, stream=stream)
    return logging.getLogger("crmbridge.test"), stream


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_registered_secret_is_redacted_at_every_level(level: int) -> None:
    register_secret(SECRET)
    log, stream = capture()
    log.log(level, "calling with token %s", SECRET, extra=fields(header=f"Bearer {SECRET}"))
    line = stream.getvalue()
    assert SECRET not in line
    assert 'calling with token ********** header="Bearer **********"' in line


def test_emails_are_redacted_at_info_but_not_at_debug() -> None:
    log, stream = capture()
    log.debug("matched %s", EMAIL)
    log.info("handed off %s", EMAIL, extra=fields(lead=EMAIL))
    debug_line, info_line = stream.getvalue().splitlines()
    assert debug_line.endswith(f"DEBUG crmbridge.test matched {EMAIL}")
    assert info_line.endswith(
        "INFO crmbridge.test handed off j***@acme.example lead=j***@acme.example"
    )
    assert "jane.doe" not in info_line


def test_level_filters_lines() -> None:
    log, stream = capture(level="WARNING")
    log.info("quiet")
    log.warning("loud")
    assert [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()] == [
        "WARNING crmbridge.test loud"
    ]


def test_exception_text_is_redacted() -> None:
    register_secret(SECRET)
    log, stream = capture()
    try:
        raise RuntimeError(f"login failed for {EMAIL} with {SECRET}")
    except RuntimeError:
        log.exception("connector failed")
    text = stream.getvalue()
    assert "RuntimeError: login failed for j***@acme.example with **********" in text
    assert SECRET not in text
    assert EMAIL not in text


def test_json_format() -> None:
    register_secret(SECRET)
    log, stream = capture(fmt="json")
    log.info("cycle done for %s", EMAIL, extra=fields(pipeline="default", pulled=10, key=SECRET))
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "crmbridge.test"
    assert record["msg"] == "cycle done for j***@acme.example"
    assert record["pipeline"] == "default"
    assert record["pulled"] == 10
    assert record["key"] == "**********"
    assert record["ts"].endswith("+00:00")


def test_text_format_quotes_values_with_spaces() -> None:
    log, stream = capture()
    log.info("run", extra=fields(pipeline="eu", reason="no budget", empty=""))
    assert stream.getvalue().rstrip().endswith('run pipeline=eu reason="no budget" empty=""')


def test_bearer_tokens_are_redacted_even_unregistered() -> None:
    assert redact("Authorization: Bearer abcdefgh12345678", emails=False) == (
        "Authorization: Bearer **********"
    )


def test_database_url_password_is_redacted_but_not_the_host() -> None:
    register_secret("postgresql+psycopg://crm:S3cure%40pw@db.internal:5432/crm")
    assert redact("password S3cure@pw rejected by db.internal") == (
        "password ********** rejected by db.internal"
    )
    assert redact("url-encoded: S3cure%40pw") == "url-encoded: **********"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    register_secret(None)
    register_secret(SecretStr(""))
    assert redact("abc is not a secret") == "abc is not a secret"


def test_every_secret_of_the_settings_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", "postgresql+psycopg://crm:pw-0a1b2c3d@db/crm")
    register_secrets_of(load_settings())
    assert redact("dsn postgresql+psycopg://crm:pw-0a1b2c3d@db/crm") == "dsn **********"
    assert redact("pw-0a1b2c3d") == "**********"
