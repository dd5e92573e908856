"""Round robin, fair and deterministic.

Each (pipeline, territory) has a turn counter; the next lead goes to ``owners[turn % len(owners)]``
and the counter moves on. A lead takes a turn once: until its handoff is confirmed
(``crm_after_handoff``), a lead routed again (held back by a plugin, or refused by the sales system
and retried) keeps the owner it was given, so a retry never costs another owner a turn. The owners
therefore differ by at most one lead in what they were given, and the same leads in the same order
always go to the same owners.

The state lives in the plugin object (one per process) and, when ``state_file`` is set, in that
JSON file, saved at the end of every cycle (written to a temporary file and renamed, so a crash
never leaves half a file) and read at start, so a restart goes on where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge import SettingsError

log = logging.getLogger("crmbridge.plugins.routing")

PENDING_LIMIT = 10_000
"""Leads routed but never handed off (held for good) are forgotten past this many."""


@dataclass
class RotationState:
    """Turn counters and the owners given to leads not yet handed off."""

    turns: dict[str, int] = field(default_factory=dict)
    pending: OrderedDict[str, str] = field(default_factory=OrderedDict)

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "turns": self.turns, "pending": dict(self.pending)}

    @classmethod
    def from_json(cls, data: Any, source: Path) -> RotationState:
        if not isinstance(data, dict) or not isinstance(data.get("turns", {}), dict):
            raise SettingsError(
                f"routing state file {source} is not a crmbridge-routing state file",
                plugin="routing",
                hint="point CRMBRIDGE_ROUTING__STATE_FILE elsewhere or delete the file",
            )
        turns = {str(k): int(v) for k, v in data.get("turns", {}).items()}
        pending = OrderedDict((str(k), str(v)) for k, v in data.get("pending", {}).items())
        return cls(turns, pending)


class Rotation:
    """The round-robin state of one process, optionally saved to a file."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.state_file = state_file
        self._lock = threading.Lock()
        self._state = self._load()
        self._dry: dict[str, RotationState] = {}
        self._dirty = False

    def _load(self) -> RotationState:
        if self.state_file is None or not self.state_file.exists():
            return RotationState()
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SettingsError(
                f"routing state file {self.state_file} cannot be read: {exc}",
                plugin="routing",
                hint="fix or delete the file (routing then starts again at the first owner)",
            ) from exc
        return RotationState.from_json(data, self.state_file)

    def _state_for(self, dry_run_id: str | None) -> RotationState:
        """The live state, or for a dry run a copy of it that the run may change freely."""
        if dry_run_id is None:
            return self._state
        if dry_run_id not in self._dry:
            self._dry[dry_run_id] = copy.deepcopy(self._state)
        return self._dry[dry_run_id]

    def next_owner(
        self, key: str, lead: str, owners: list[str], *, dry_run_id: str | None = None
    ) -> tuple[str, int]:
        """The owner for ``lead`` in rotation ``key`` and the turn it took (0-based)."""
        with self._lock:
            state = self._state_for(dry_run_id)
            pending_key = f"{key}|{lead}"
            given = state.pending.get(pending_key)
            if given is not None and given in owners:
                return given, owners.index(given)
            turn = state.turns.get(key, 0)
            owner = owners[turn % len(owners)]
            state.turns[key] = turn + 1
            state.pending[pending_key] = owner
            while len(state.pending) > PENDING_LIMIT:
                state.pending.popitem(last=False)
            if dry_run_id is None:
                self._dirty = True
            return owner, turn

    def handed_off(self, key: str, lead: str) -> None:
        """The lead's handoff is recorded: its next routing (after a recycle) takes a new turn."""
        with self._lock:
            if self._state.pending.pop(f"{key}|{lead}", None) is not None:
                self._dirty = True

    def finish_run(self, dry_run_id: str | None) -> None:
        """Forget a dry run's copy; save the live state when it changed."""
        with self._lock:
            if dry_run_id is not None:
                self._dry.pop(dry_run_id, None)
                return
            if not self._dirty or self.state_file is None:
                return
            self._save(self.state_file)
            self._dirty = False

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._state.to_json(), out, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.debug("routing state saved to %s", path)

    def turns(self) -> dict[str, int]:
        """The turn counters (for tests and for people)."""
        with self._lock:
            return dict(self._state.turns)
