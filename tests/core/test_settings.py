"""Settings: env files and the environment, their precedence, errors, and secrets kept secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from crmbridge.connector import ConnectorSettings
from crmbridge.errors import ConfigurationError, SettingsError
from crmbridge.settings import (
    SettingValue,
    connector_settings,
    describe_settings,
    load_settings,
    warn_if_world_readable,
)

DB_PASSWORD = "hunter2-db-Pa55"
DB_URL = f"postgresql+psycopg://crm:{DB_PASSWORD}@db.internal:5432/crm"
TOKEN = "pat-na1-0123456789abcdef"


def env_file(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> Path:
    """Write an env file with ``text`` and the file mode ``mode``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_later_env_file_wins(tmp_path: Path) -> None:
    base = env_file(
        tmp_path,
        "base.env",
        "CRMBRIDGE_PIPELINE__NAME=from_base\nCRMBRIDGE_LOG_LEVEL=debug\n"
        "CRMBRIDGE_QUOTA_RESERVE=0.3\n",
    )
    prod = env_file(
        tmp_path, "prod.env", "# production\nexport CRMBRIDGE_PIPELINE__NAME=from_prod\n"
    )
    settings = load_settings([base, prod])
    assert settings.pipeline.name == "from_prod"
    assert settings.log_level == "DEBUG"
    assert settings.quota_reserve == 0.3
    assert settings.env_files == (base, prod)


def test_environment_wins_over_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = env_file(tmp_path, "base.env", "CRMBRIDGE_PIPELINE__NAME=from_base\n")
    prod = env_file(tmp_path, "prod.env", "CRMBRIDGE_PIPELINE__NAME=from_prod\n")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__NAME", "from_env")
    assert load_settings([base, prod]).pipeline.name == "from_env"


def test_nested_settings_use_double_underscores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__MARKETING", "marketo")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__POLL_SECONDS", "2.5")
    settings = load_settings()
    assert settings.pipeline.marketing == "marketo"
    assert settings.pipeline.poll_seconds == 2.5
    assert settings.pipeline.sales == "salesforce"


def test_defaults() -> None:
    settings = load_settings()
    assert settings.definition == Path("configs/lead-definition.toml")
    assert settings.database_url.get_secret_value() == "sqlite:///crmbridge.sqlite3"
    assert settings.load_plugins is None
    assert settings.disable_plugins == []
    assert settings.env_files == ()


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("hubspot", ["hubspot"]),
        ("hubspot, salesforce ,,", ["hubspot", "salesforce"]),
        ("", []),
    ],
)
def test_plugin_lists_are_comma_separated(
    raw: str, names: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRMBRIDGE_LOAD_PLUGINS", raw)
    path = env_file(tmp_path, "a.env", f"CRMBRIDGE_DISABLE_PLUGINS={raw}\n")
    settings = load_settings([path])
    assert settings.load_plugins == names
    assert settings.disable_plugins == names


def test_invalid_values_name_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = env_file(tmp_path, "bad.env", "CRMBRIDGE_QUOTA_RESERVE=2\nCRMBRIDGE_RUNTIME=cluster\n")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__POLL_SECONDS", "soon")
    monkeypatch.setenv("CRMBRIDGE_LOG_LEVEL", "chatty")
    with pytest.raises(SettingsError) as caught:
        load_settings([path])
    lines = str(caught.value).splitlines()
    assert lines[0] == f"invalid settings (env files: {path}):"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "CRMBRIDGE_LOG_LEVEL",
        "CRMBRIDGE_PIPELINE__POLL_SECONDS",
        "CRMBRIDGE_QUOTA_RESERVE",
        "CRMBRIDGE_RUNTIME",
    ]
    assert "  CRMBRIDGE_LOG_LEVEL: Value error, must be one of DEBUG, INFO, WARNING, ERROR" in lines
    assert isinstance(caught.value, ConfigurationError)


def test_an_invalid_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Someone pasted a token into the wrong variable: the error must not print it.
    monkeypatch.setenv("CRMBRIDGE_METRICS_PORT", TOKEN)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "CRMBRIDGE_METRICS_PORT" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_missing_env_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(SettingsError) as caught:
        load_settings([missing])
    assert str(caught.value) == f"env file {missing} does not exist (check the --env-file path)"


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    path = env_file(tmp_path, "a.env", f"CRMBRIDGE_DATABASE_URL={DB_URL}\n")
    settings = load_settings([path])
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert DB_PASSWORD not in text
        assert "**********" in text
    assert settings.database_url.get_secret_value() == DB_URL
    assert settings.database_url_display == "postgresql+psycopg://crm:***@db.internal:5432/crm"


# -- describe_settings ----------------------------------------------------------------------------


class DemoLimits(BaseModel):
    """A nested section of a connector's settings."""

    per_second: float = 10.0


class DemoSettings(ConnectorSettings):
    """A connector's settings with a secret, a required value and a nested section."""

    api_key: SecretStr
    base_url: str = "https://api.demo.example"
    retries: int = 3
    client_secret: SecretStr = SecretStr("")
    limits: DemoLimits = DemoLimits()


def rows_by_key(rows: list[SettingValue]) -> dict[str, SettingValue]:
    """describe_settings' rows by variable name."""
    return {row.key: row for row in rows}


def test_describe_settings_sources_and_redaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = env_file(
        tmp_path,
        "base.env",
        f"# the store\nCRMBRIDGE_DATABASE_URL={DB_URL}\nCRMBRIDGE_PIPELINE__NAME=eu\n"
        f"CRMBRIDGE_DEMO__API_KEY={TOKEN}\n",
    )
    prod = env_file(tmp_path, "prod.env", "CRMBRIDGE_PIPELINE__NAME=eu-prod\n")
    monkeypatch.setenv("CRMBRIDGE_QUOTA_RESERVE", "0.5")
    settings = load_settings([base, prod])
    demo = connector_settings(DemoSettings, "demo", settings)

    rows = rows_by_key(describe_settings(settings, {"demo": demo}))

    assert rows["CRMBRIDGE_DATABASE_URL"] == SettingValue(
        "CRMBRIDGE_DATABASE_URL",
        "postgresql+psycopg://crm:***@db.internal:5432/crm",
        f"{base}:2",
        True,
    )
    assert rows["CRMBRIDGE_PIPELINE__NAME"] == SettingValue(
        "CRMBRIDGE_PIPELINE__NAME", "eu-prod", f"{prod}:1", False
    )
    assert rows["CRMBRIDGE_QUOTA_RESERVE"] == SettingValue(
        "CRMBRIDGE_QUOTA_RESERVE", "0.5", "environment", False
    )
    assert rows["CRMBRIDGE_RUNTIME"] == SettingValue(
        "CRMBRIDGE_RUNTIME", "embedded", "default", False
    )
    assert rows["CRMBRIDGE_DEMO__API_KEY"] == SettingValue(
        "CRMBRIDGE_DEMO__API_KEY", "**********", f"{base}:4", True
    )
    assert rows["CRMBRIDGE_DEMO__CLIENT_SECRET"] == SettingValue(
        "CRMBRIDGE_DEMO__CLIENT_SECRET", "", "default", True
    )
    assert rows["CRMBRIDGE_DEMO__LIMITS__PER_SECOND"].value == "10.0"
    everything = repr(list(rows.values()))
    assert DB_PASSWORD not in everything
    assert TOKEN not in everything


def test_database_url_without_password_is_shown_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", "sqlite:////var/lib/crmbridge/state.sqlite3")
    row = rows_by_key(describe_settings(load_settings()))["CRMBRIDGE_DATABASE_URL"]
    assert row == SettingValue(
        "CRMBRIDGE_DATABASE_URL",
        "sqlite:////var/lib/crmbridge/state.sqlite3",
        "environment",
        True,
    )


# -- connector settings ---------------------------------------------------------------------------


def test_connector_settings_layering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = env_file(
        tmp_path,
        "base.env",
        f"CRMBRIDGE_DEMO__API_KEY={TOKEN}\nCRMBRIDGE_DEMO__RETRIES=5\n"
        "CRMBRIDGE_DEMO__LIMITS__PER_SECOND=4\nCRMBRIDGE_OTHER__RETRIES=9\n",
    )
    prod = env_file(tmp_path, "prod.env", "CRMBRIDGE_DEMO__RETRIES=7\n")
    monkeypatch.setenv("CRMBRIDGE_DEMO__BASE_URL", "http://127.0.0.1:9999")
    demo = connector_settings(DemoSettings, "demo", load_settings([base, prod]))
    assert demo.api_key.get_secret_value() == TOKEN
    assert demo.retries == 7
    assert demo.base_url == "http://127.0.0.1:9999"
    assert demo.limits.per_second == 4.0
    assert demo.timeout_seconds == 30.0
    assert TOKEN not in repr(demo)


def test_connector_settings_errors_name_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = env_file(tmp_path, "a.env", "CRMBRIDGE_DEMO__RETRIES=many\n")
    with pytest.raises(SettingsError) as caught:
        connector_settings(DemoSettings, "demo", load_settings([path]))
    lines = str(caught.value).splitlines()
    assert lines[0] == f"invalid settings (env files: {path}):"
    assert lines[1] == "  CRMBRIDGE_DEMO__API_KEY: Field required"
    assert lines[2].startswith("  CRMBRIDGE_DEMO__RETRIES: Input should be a valid integer")


# -- the world-readable warning -------------------------------------------------------------------


def test_world_readable_env_file_with_secrets_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = env_file(
        tmp_path,
        "shared.env",
        f"CRMBRIDGE_DATABASE_URL={DB_URL}\nCRMBRIDGE_DEMO__API_KEY={TOKEN}\n",
        mode=0o644,
    )
    with caplog.at_level(logging.WARNING, logger="crmbridge.settings"):
        assert warn_if_world_readable(path)
    [record] = caplog.records
    assert record.getMessage() == (
        f"env file {path} holds secrets (CRMBRIDGE_DATABASE_URL, CRMBRIDGE_DEMO__API_KEY) and is "
        f"readable by other users; run: chmod 600 {path}"
    )
    assert TOKEN not in record.getMessage()


def test_load_settings_warns_about_a_readable_env_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = env_file(tmp_path, "shared.env", "CRMBRIDGE_SALESFORCE__PASSWORD=x\n", mode=0o640)
    with caplog.at_level(logging.WARNING, logger="crmbridge.settings"):
        load_settings([path])
    assert [r.getMessage() for r in caplog.records] == [
        f"env file {path} holds secrets (CRMBRIDGE_SALESFORCE__PASSWORD) and is readable by "
        f"other users; run: chmod 600 {path}"
    ]


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (f"CRMBRIDGE_DEMO__API_KEY={TOKEN}\n", 0o600),
        ("CRMBRIDGE_PIPELINE__NAME=eu\n", 0o644),
    ],
    ids=["private file", "no secrets"],
)
def test_no_warning(text: str, mode: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = env_file(tmp_path, "a.env", text, mode=mode)
    with caplog.at_level(logging.WARNING, logger="crmbridge.settings"):
        assert not warn_if_world_readable(path)
    assert caplog.records == []
    assert not warn_if_world_readable(tmp_path / "missing.env")
