"""Errors, grouped by what the runner should do next.

* :class:`ConfigurationError` — refuse to start: the settings, the lead definition or a plugin
  is wrong.
* :class:`FatalError` — stop this pipeline (bad credentials, quota spent); other pipelines go on.
* :class:`RetriableError` — back off and try the same call again (429, 5xx, dropped connection).
* :class:`RecordError` — quarantine this one record, with the field and the rule; the rest flow on
  (:class:`TransientRecordError`: and write it again at the next cycle).

Every error can say which plugin, system, record and field it concerns, and how to fix it; the
message names them so a person reading a log line knows where to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


class CrmBridgeError(Exception):
    """Base of every crmbridge error.

    :param message: what is wrong, in one sentence.
    :param plugin: the plugin (or connector) that raised or caused it.
    :param system: the connected system concerned (``"salesforce"``, ``"hubspot"``).
    :param record: the record concerned (an email, a native id).
    :param field: the field concerned (shared or native name).
    :param hint: how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        system: str | None = None,
        record: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.plugin = plugin
        self.system = system
        self.record = record
        self.field = field
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [
            f"{label} {value}"
            for label, value in (
                ("plugin", self.plugin),
                ("system", self.system),
                ("record", self.record),
                ("field", self.field),
            )
            if value and str(value) not in self.message
        ]
        text = f"{'; '.join(where)}: {self.message}" if where else self.message
        return f"{text} ({self.hint})" if self.hint else text


# -- refuse to start -----------------------------------------------------------------------------


class ConfigurationError(CrmBridgeError):
    """Settings, the lead definition or the plugin set is wrong: refuse to start."""


@dataclass(frozen=True)
class DefinitionProblem:
    """One thing wrong in a lead definition file, at a TOML key, with the fix."""

    key: str
    message: str
    fix: str = ""

    def render(self, filename: str) -> str:
        text = f"{filename}: [{self.key}] {self.message}"
        return f"{text}; {self.fix}" if self.fix else text


class DefinitionError(ConfigurationError):
    """The lead definition file is invalid. ``problems`` lists every key at fault."""

    def __init__(self, filename: str, problems: Sequence[DefinitionProblem]) -> None:
        self.filename = filename
        self.problems = list(problems)
        lines = [p.render(filename) for p in self.problems]
        super().__init__("\n".join(lines) if lines else f"{filename}: invalid lead definition")

    def __str__(self) -> str:
        return self.message


class SettingsError(ConfigurationError):
    """An env file or environment variable holds a value crmbridge cannot use."""


class PluginLoadError(ConfigurationError):
    """A plugin could not be imported or registered; start-up stops with its name and reason."""


class DuplicateConnectorError(ConfigurationError):
    """Two plugins registered a connector under the same name."""


# -- stop this pipeline --------------------------------------------------------------------------


class FatalError(CrmBridgeError):
    """This pipeline cannot go on until a person acts (credentials, permissions, quota)."""


class AuthenticationError(FatalError):
    """The system refused the credentials."""


class QuotaExhausted(FatalError):
    """The system's API quota (or crmbridge's share of it) is spent until ``resets_at``."""

    def __init__(
        self, message: str, *, resets_at: datetime | None = None, **kw: str | None
    ) -> None:
        self.resets_at = resets_at
        super().__init__(message, **kw)


class PipelineHeld(FatalError):
    """Another process holds this pipeline's lease; this one must not advance its cursors."""


# -- back off and retry --------------------------------------------------------------------------


class RetriableError(CrmBridgeError):
    """A transient failure; the same call may succeed later. ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class RateLimited(RetriableError):
    """The system answered 429 (or its equivalent); ``policy`` names the limit hit."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        policy: str | None = None,
        **kw: str | None,
    ) -> None:
        self.policy = policy
        super().__init__(message, retry_after=retry_after, **kw)


class TransientError(RetriableError):
    """A 5xx answer, a dropped connection or a timeout."""


class SessionExpired(RetriableError):
    """The session or token expired; log in again and retry."""


# -- quarantine this record ----------------------------------------------------------------------


class RecordError(CrmBridgeError):
    """One record cannot be processed. ``rule`` names the rule it broke."""

    def __init__(self, message: str, *, rule: str | None = None, **kw: str | None) -> None:
        self.rule = rule
        super().__init__(message, **kw)


class ValidationFailed(RecordError):
    """The record breaks the lead definition (a type, a format, a required field)."""


class MappingError(RecordError):
    """A value has no mapping between a system and the lead definition (picklist drift)."""


class WriteRejected(RecordError):
    """The system refused to write this record; ``code`` is the system's own error code."""

    def __init__(self, message: str, *, code: str | None = None, **kw: str | None) -> None:
        self.code = code
        super().__init__(message, **kw)


class TransientRecordError(WriteRejected):
    """The system could not write this one record just now (a row lock, an internal error on one
    record of a batch) while the rest of the batch went through.

    The record is quarantined, so it shows in ``crmbridge quarantine list``, and written again at
    the next cycle without anyone's help; its entry is resolved once the write goes through.
    """


class TransitionRefused(RecordError):
    """The lead definition forbids this stage change; it is recorded and not applied."""
