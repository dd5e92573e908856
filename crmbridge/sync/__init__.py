"""The sync engine: one cycle of a pipeline (intake, handoff, outcomes, SLA, write-back), and the
backfill."""

from __future__ import annotations

from crmbridge.sync.cycle import CycleResult, PipelineRunner, process_owner
from crmbridge.sync.pipeline import Pipeline, load_pipelines
from crmbridge.sync.plan import Plan, PlannedWrite

__all__ = [
    "CycleResult",
    "Pipeline",
    "PipelineRunner",
    "Plan",
    "PlannedWrite",
    "load_pipelines",
    "process_owner",
]
