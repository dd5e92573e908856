"""The sandbox harness: serve vendor emulators locally, log their calls, inject faults.

Vendor-neutral; each vendor's emulator ships in the plugin that knows the vendor and is registered
through the ``crm_register_sandboxes`` hook.
"""

from __future__ import annotations

from crmbridge.testing.sandbox.calllog import Call, CallLog
from crmbridge.testing.sandbox.clock import SandboxClock
from crmbridge.testing.sandbox.control import SandboxControl, SandboxControlError
from crmbridge.testing.sandbox.emulator import ControlError, Emulator
from crmbridge.testing.sandbox.faults import Fault, FaultKind, FaultPlan, FaultRule
from crmbridge.testing.sandbox.ratelimit import DailyBudget, RollingWindow
from crmbridge.testing.sandbox.server import (
    SandboxApp,
    SandboxProcess,
    SandboxServer,
    emulator_ref,
    load_emulator_class,
)

__all__ = [
    "Call",
    "CallLog",
    "ControlError",
    "DailyBudget",
    "Emulator",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "RollingWindow",
    "SandboxApp",
    "SandboxClock",
    "SandboxControl",
    "SandboxControlError",
    "SandboxProcess",
    "SandboxServer",
    "emulator_ref",
    "load_emulator_class",
]
