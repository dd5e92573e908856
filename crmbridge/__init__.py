"""crmbridge: keeps marketing and sales working from one definition of a lead.

The public API for plugins and embedders. Import from here, not from submodules.
"""

from __future__ import annotations

__version__ = "0.1.0"

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.connector import (
    ANNOTATIONS,
    ApiUsage,
    Change,
    ChangeBatch,
    ChangeKind,
    CheckItem,
    CheckReport,
    Connector,
    ConnectorSettings,
    Cursor,
    LeadWrite,
    OutcomeBatch,
    SetupReport,
    WriteResult,
)
from crmbridge.context import Hold, HookContext, Route, RunCounts
from crmbridge.definition import (
    Cause,
    Drift,
    LeadDefinition,
    Problem,
    Qualification,
    ScoreCard,
    ScoreReason,
    SystemMapping,
    TransitionDecision,
)
from crmbridge.errors import (
    AuthenticationError,
    ConfigurationError,
    CrmBridgeError,
    DefinitionError,
    DuplicateConnectorError,
    FatalError,
    MappingError,
    PipelineHeld,
    PluginLoadError,
    QuotaExhausted,
    RateLimited,
    RecordError,
    RetriableError,
    SessionExpired,
    SettingsError,
    TransientError,
    TransientRecordError,
    TransitionRefused,
    ValidationFailed,
    WriteRejected,
)
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Handoff, Lead, Outcome, OutcomeKind, Stage, normalize_email
from crmbridge.settings import Settings, load_settings
from crmbridge.store.records import QuarantinedRecord
from crmbridge.values import check_value

__all__ = [
    "ANNOTATIONS",
    "ApiUsage",
    "AuthenticationError",
    "Cause",
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "CheckItem",
    "CheckReport",
    "ConfigurationError",
    "Connector",
    "ConnectorSettings",
    "CrmBridge",
    "CrmBridgeError",
    "Cursor",
    "DefinitionError",
    "Drift",
    "DuplicateConnectorError",
    "FatalError",
    "Handoff",
    "Hold",
    "HookContext",
    "Lead",
    "LeadDefinition",
    "LeadWrite",
    "MappingError",
    "Outcome",
    "OutcomeBatch",
    "OutcomeKind",
    "PipelineHeld",
    "PluginLoadError",
    "Problem",
    "Qualification",
    "QuarantinedRecord",
    "QuotaExhausted",
    "RateLimited",
    "RecordError",
    "RetriableError",
    "Route",
    "RunCounts",
    "ScoreCard",
    "ScoreReason",
    "SessionExpired",
    "Settings",
    "SettingsError",
    "SetupReport",
    "Stage",
    "SystemMapping",
    "TransientError",
    "TransientRecordError",
    "TransitionDecision",
    "TransitionRefused",
    "ValidationFailed",
    "WriteRejected",
    "WriteResult",
    "__version__",
    "check_value",
    "default_definition_path",
    "hookimpl",
    "load_settings",
    "normalize_email",
]
