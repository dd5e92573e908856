"""The Connector contract and the records connectors exchange with the core.

A connector is a class with a ``name``, registered by a plugin through
``crm_register_connectors(register)``. It knows one vendor's API and nothing of the lifecycle: it
reads native records and maps them to shared leads through the lead definition, and it writes the
core's decisions back, always through the vendor's batch endpoints.

Delivery is at-least-once: the core commits a cursor only after the writes a batch caused
succeeded, so a connector may be asked for the same records again, and every write it makes must
be an idempotent upsert keyed on an id (an external id, an email), so a replay changes nothing.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from crmbridge.errors import RecordError

if TYPE_CHECKING:
    import logging

    from crmbridge.definition import Drift, LeadDefinition, Problem, SystemMapping
    from crmbridge.lead import Lead, Outcome, OutcomeKind


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a connector's incremental read stands: a JSON-able ``position`` only it interprets.

    The core stores it per pipeline, system and stream, and hands it back unchanged.
    """

    position: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.position.get(key, default)

    def advance(self, **changes: Any) -> Cursor:
        return Cursor({**self.position, **changes})

    @property
    def empty(self) -> bool:
        return not self.position


class ChangeKind(StrEnum):
    """What happened to a native record."""

    UPSERT = "upsert"
    DELETE = "delete"
    MERGE = "merge"


@dataclass(frozen=True, slots=True)
class Change:
    """One native record that changed, mapped to the shared language.

    :param system: the system it was read from.
    :param native_id: the system's id of the record.
    :param kind: upsert, delete or merge.
    :param modified_at: the system's last-modified time of the record.
    :param lead: the record as a shared lead (``None`` for a delete, or when mapping failed);
        its ``stage`` is the shared stage the system shows, when it shows one.
    :param raw: the native record as read, kept for quarantine and for ``lead show``.
    :param problems: mapping problems (an unmapped picklist value, a value of the wrong type);
        a change with problems is quarantined with them.
    :param merged_into: for a merge, the native id of the record that survived.
    """

    system: str
    native_id: str
    kind: ChangeKind
    modified_at: datetime
    lead: Lead | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """A page of changes and the cursor to commit once the core has processed all of them."""

    changes: Sequence[Change]
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class OutcomeBatch:
    """A page of sales' verdicts and the cursor to commit after them.

    :param outcomes: the verdicts found in this page (a record may give several: converted, won).
    :param cursor: the position after this page.
    :param observations: the sales records of this page as shared leads (``Change.lead``), so
        the core sees the fields sales owns and tells a person's edit from its own writes.
    :param problems: records that could not be read (an unmapped status, say); quarantined.
    """

    outcomes: Sequence[Outcome]
    cursor: Cursor
    observations: Sequence[Change] = ()
    problems: Sequence[Change] = ()


# -- writing -------------------------------------------------------------------------------------

ANNOTATIONS = (
    "crmbridge_id",
    "stage",
    "score",
    "why",
    "handed_off_at",
    "accepted_at",
    "sla_due_at",
    "sla_breached",
    "outcome",
    "outcome_reason",
    "owner",
    "deal_amount",
    "definition_version",
)
"""crmbridge's own fields, which each connector maps to the custom fields its ``setup()`` makes."""


@dataclass(frozen=True, slots=True)
class LeadWrite:
    """What the core asks a connector to write for one lead.

    :param email: the lead's normalized email.
    :param crmbridge_id: the lead's stable crmbridge id (the external id for upserts).
    :param native_id: the system's id of the record, when known.
    :param fields: shared field → value to write; the core has already left out the fields this
        system owns and those a person changed after crmbridge last wrote them.
    :param stage: the shared stage to show, or ``None`` to leave it.
    :param stage_backwards: the stage moves backwards (a recycle), for systems that need a special
        step for that (HubSpot clears ``lifecyclestage`` first).
    :param outcome: sales' verdict to show (marketing side), or ``None``.
    :param annotations: crmbridge's own fields (see :data:`ANNOTATIONS`) → value.
    :param owner: the owner or queue to assign (sales side), or ``None``.
    :param create: whether a missing record may be created (handoffs) or must already exist.
    :param may_exist: this handoff was sent before and crmbridge stopped before it recorded the
        answer, so the record may exist (with what sales did to it since): a record found with
        this ``crmbridge_id`` is then updated like a linked one — fields and annotations, not
        its status or owner — instead of written as new.
    """

    email: str
    crmbridge_id: str
    native_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    stage: str | None = None
    stage_backwards: bool = False
    outcome: OutcomeKind | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None
    create: bool = True
    may_exist: bool = False

    @property
    def key(self) -> str:
        return self.crmbridge_id


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The system's answer for one :class:`LeadWrite`.

    :param key: the write's ``crmbridge_id``.
    :param ok: whether the record was written.
    :param native_id: the system's id of the record written.
    :param created: whether it was created (``False``: updated; ``None``: unknown).
    :param modified_at: the system's last-modified time after the write, when it says.
    :param error: why it was not written, as a record error naming the field and the rule.
    :param skipped: the write was not needed or not allowed (e.g. a converted Salesforce lead).
    """

    key: str
    ok: bool
    native_id: str | None = None
    created: bool | None = None
    modified_at: datetime | None = None
    error: RecordError | None = None
    skipped: str | None = None


# -- checking and reporting ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One finding of a connector's :meth:`Connector.check`: ``level`` is ok, warning or error."""

    level: str
    subject: str
    message: str
    fix: str = ""


@dataclass
class CheckReport:
    """Connectivity, permissions, missing custom fields and picklist drift of one system."""

    system: str
    items: list[CheckItem] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift and all(i.level != "error" for i in self.items)

    def add(self, level: str, subject: str, message: str, fix: str = "") -> None:
        self.items.append(CheckItem(level, subject, message, fix))


@dataclass
class SetupReport:
    """What :meth:`Connector.setup` created, what already existed, and what a person must do."""

    system: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """A system's API quota as last seen, and the calls this connector made.

    :param used: calls counted against the quota in its window (the whole org's or portal's).
    :param limit: the quota for the window.
    :param window: ``"24h"`` (Salesforce, rolling) or ``"daily"`` (HubSpot) or another label.
    :param calls: HTTP calls this connector instance made.
    :param resets_at: when the quota resets, when the system says.
    """

    system: str
    used: int | None = None
    limit: int | None = None
    window: str = "daily"
    calls: int = 0
    resets_at: datetime | None = None

    @property
    def remaining(self) -> int | None:
        if self.used is None or self.limit is None:
            return None
        return max(0, self.limit - self.used)

    def share_used(self) -> float | None:
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit


class ConnectorSettings(BaseModel):
    """Base of a connector's settings, read from ``CRMBRIDGE_<NAME>__*`` in the env files.

    Subclass it with the connector's own fields; declare secrets as ``SecretStr``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    timeout_seconds: float = 30.0
    """Read timeout of every HTTP call (the vendor SDKs set none)."""
    lookback_seconds: float = 300.0
    """How far before its cursor an incremental read starts again, so records committed late
    (with a modification time before the cursor) are still read."""


# -- the contract --------------------------------------------------------------------------------


class Connector(abc.ABC):
    """A connection to one system, speaking the shared lead definition.

    Subclasses set the class attributes and implement the abstract methods; most of a connector is
    declarative. The core calls it from one thread at a time.

    Class attributes:

    * ``name`` — the registry name, also the settings prefix (``CRMBRIDGE_<NAME>__``);
    * ``system`` — the lead definition's ``[systems.<system>]`` it maps through (defaults to name);
    * ``label`` — for people;
    * ``roles`` — the roles it can play: ``"marketing"`` (a source of leads that receives
      outcomes) and/or ``"sales"`` (receives handoffs, gives outcomes);
    * ``settings_class`` — its :class:`ConnectorSettings` subclass;
    * ``batch_size`` — the most records one write call carries.
    """

    name: ClassVar[str]
    system: ClassVar[str] = ""
    label: ClassVar[str] = ""
    roles: ClassVar[frozenset[str]] = frozenset({"marketing", "sales"})
    settings_class: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    batch_size: ClassVar[int] = 100

    def __init__(
        self,
        settings: ConnectorSettings,
        definition: LeadDefinition,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        import logging as _logging

        self.settings = settings
        self.definition = definition
        self.mapping: SystemMapping = definition.system(self.system_name())
        self.log = log or _logging.getLogger(f"crmbridge.connector.{self.name}")

    @classmethod
    def system_name(cls) -> str:
        return cls.system or cls.name

    @classmethod
    def validate_class(cls) -> None:
        """Raise ``TypeError`` if the class does not fill in the contract's declarations."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__} needs a class attribute `name`, a lower-case "
                f"identifier (got {name!r})"
            )
        if not cls.roles or not cls.roles <= {"marketing", "sales"}:
            raise TypeError(f"{cls.__qualname__}.roles must be a subset of marketing, sales")
        if not issubclass(cls.settings_class, ConnectorSettings):
            raise TypeError(f"{cls.__qualname__}.settings_class must subclass ConnectorSettings")

    # -- marketing side --------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """Native records changed since ``cursor``, mapped to shared leads, page by page.

        Must not skip a record committed late (re-read a lookback window before the cursor) nor
        stop at a search cap; must report deletes and merges. The cursor of each batch is
        committed by the core only after the batch is processed.
        """
        raise NotImplementedError(f"{self.name} cannot act as a source of leads")

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every record modified in ``[since, until)`` for a backfill, resumable from ``cursor``;
        ``since=None`` means from the first record.

        Defaults to :meth:`pull_changes` from ``since``; connectors with a cheaper bulk path
        override it.
        """
        raise NotImplementedError(f"{self.name} cannot backfill")

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        """The records with these ids, read now, as changes (retrying quarantined records)."""
        raise NotImplementedError(f"{self.name} cannot fetch records by id")

    def count_range(self, since: datetime | None, until: datetime | None) -> int | None:
        """How many records :meth:`pull_range` would read, if the system can say cheaply."""
        return None

    def write_outcomes(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Write sales' verdicts back (stage, status, crmbridge's fields) to existing records."""
        raise NotImplementedError(f"{self.name} cannot receive outcomes")

    # -- sales side ------------------------------------------------------------------------

    def push_leads(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Create or update leads, idempotently (an upsert keyed on ``crmbridge_id``).

        One result per write, in order; a record the system refuses is a failed result, never an
        exception for the whole batch.
        """
        raise NotImplementedError(f"{self.name} cannot receive handoffs")

    def pull_outcomes(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        """Sales' verdicts since ``cursor`` (status changes, conversions, won or lost deals)."""
        raise NotImplementedError(f"{self.name} cannot give outcomes")

    # -- both ------------------------------------------------------------------------------

    @abc.abstractmethod
    def check(self) -> CheckReport:
        """Connectivity, permissions, crmbridge's custom fields, picklist drift."""

    @abc.abstractmethod
    def setup(self, *, dry_run: bool = False) -> SetupReport:
        """Create the custom fields crmbridge writes; idempotent; say what a person must add."""

    @abc.abstractmethod
    def api_usage(self) -> ApiUsage:
        """The quota as last seen (without spending a call when the last answer said it)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_error(result: WriteResult, error: RecordError) -> WriteResult:
    """A copy of ``result`` marked failed with ``error``."""
    return replace(result, ok=False, error=error)
