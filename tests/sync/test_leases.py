"""A lease left by a crashed process of this machine is taken over; any other is waited out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmbridge.errors import PipelineHeld
from crmbridge.store import open_store
from crmbridge.sync.leases import gone_from_this_host, take_lease

HOUR = timedelta(hours=1)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_of_a_dead_local_process_is_taken_over_with_a_new_fence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    now = datetime.now(UTC)
    crashed = f"{socket.gethostname()}:{dead_pid()}:abc123"
    first = store.acquire_lease("default", crashed, HOUR, now)
    me = f"{socket.gethostname()}:{os.getpid()}:def456"
    taken = take_lease(store, "default", me, HOUR, now)
    assert taken.owner == me
    assert taken.fence == first.fence + 1


def test_a_live_or_remote_holder_is_waited_out(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    now = datetime.now(UTC)
    live = f"{socket.gethostname()}:{os.getppid()}:live"
    store.acquire_lease("default", live, HOUR, now)
    with pytest.raises(PipelineHeld, match=r"is held by .*:live until"):
        take_lease(store, "default", "me:1:x", HOUR, now)
    store.acquire_lease("other", f"another-host:{dead_pid()}:x", HOUR, now)
    with pytest.raises(PipelineHeld, match="another-host"):
        take_lease(store, "other", "me:1:x", HOUR, now)


def test_owner_names_are_read_carefully() -> None:
    host = socket.gethostname()
    assert gone_from_this_host(f"{host}:{dead_pid()}:x")
    assert not gone_from_this_host(f"{host}:{os.getpid()}:x")
    assert not gone_from_this_host(f"elsewhere:{dead_pid()}:x")
    assert not gone_from_this_host("worker-a")
    assert not gone_from_this_host(f"{host}:not-a-pid:x")
