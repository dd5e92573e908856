"""What crmbridge knows of a lead's record in one system: telling its own writes (echoes) from a
person's edits, and which fields a person changed after crmbridge last wrote them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from crmbridge.store.store import LinkRow

# Search indexes and read replicas may answer with a record as it was just before crmbridge's own
# write; an observation made this soon after a write is not trusted to show a person's edit.
SETTLE = timedelta(seconds=60)


def is_echo(link: LinkRow | None, modified_at: datetime) -> bool:
    """Whether a record modified at ``modified_at`` only shows crmbridge's own last write."""
    if link is None or link.written_modified_at is None:
        return False
    return modified_at <= link.written_modified_at


def stage_seen_before(link: LinkRow | None, stage: str | None) -> bool:
    """Whether the record shows the stage crmbridge saw there last time: no person's decision,
    even when crmbridge has since moved the lead on and not yet written that back (it stopped
    in between), so the stale value must not undo crmbridge's newer one."""
    return (
        link is not None
        and stage is not None
        and bool(link.observed)
        and (link.observed or {}).get("@stage") == stage
    )


def conflicts(link: LinkRow | None, fields: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    """Fields a person changed in the system after crmbridge last wrote them.

    field → (what crmbridge wrote, what the system holds now). A field crmbridge never wrote
    there has no conflict: there is no edit of crmbridge's to protect or overwrite.
    """
    if link is None or not link.written or not link.observed or link.observed_at is None:
        return {}
    if link.written_at is not None and link.observed_at < link.written_at + SETTLE:
        return {}
    if link.written_modified_at is not None and (
        link.native_modified_at is None or link.native_modified_at <= link.written_modified_at
    ):
        return {}
    found = {}
    for name in fields:
        if name in link.written and name in link.observed:
            wrote, now = link.written[name], link.observed[name]
            if _norm(wrote) != _norm(now):
                found[name] = (wrote, now)
    return found


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def merged_written(link: LinkRow | None, wrote: Mapping[str, Any]) -> dict[str, Any]:
    """What crmbridge has written to the record, with this write's values."""
    base = dict(link.written) if link is not None and link.written else {}
    base.update(wrote)
    return base
