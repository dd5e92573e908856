"""Taking a pipeline's lease, and taking over one left by a crashed process on this machine.

A lease held by a process that is gone would otherwise keep its pipeline waiting for
``lease_seconds`` after a crash and restart. When the holder's name says it ran on this host and
its process no longer exists, the lease is given up for it and taken with a new fence: whatever
that process might still send (it cannot: it is gone) would be refused by the fence anyway. A
holder on another machine is never second-guessed: its lease is waited out.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from crmbridge.errors import PipelineHeld
from crmbridge.store import Store
from crmbridge.store.records import LeaseInfo

log = logging.getLogger("crmbridge.sync")


def take_lease(store: Store, pipeline: str, owner: str, ttl: timedelta, now: datetime) -> LeaseInfo:
    """The pipeline's lease for ``owner`` (raises :class:`PipelineHeld` if a live process has
    it)."""
    try:
        return store.acquire_lease(pipeline, owner, ttl, now)
    except PipelineHeld:
        held = store.lease(pipeline)
        if held is None or not gone_from_this_host(held.owner):
            raise
        log.warning(
            "pipeline %s: its lease is held by %s, a process of this machine that no longer "
            "runs (it crashed or was killed); taking the lease over",
            pipeline,
            held.owner,
        )
        store.release_lease(pipeline, held.owner)
        return store.acquire_lease(pipeline, owner, ttl, now)


def gone_from_this_host(owner: str) -> bool:
    """Whether a lease owner ``host:pid:...`` names a process of this host that has ended."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists (another user's)
    return False
