"""The Raft log on a full disk: ``save`` raises ``StorageFull`` (raft_zmq/statemachine.py) with
nothing written, so that the driver waits and retries instead of dying, and the same save
succeeds once room is made. Found by the real-network fault suite (docs/reliability.md,
"Findings"): a follower whose disk filled to the last byte exited on ``lmdb.DiskError``.

The disk is a small tmpfs of the test's own (root only; skipped otherwise)."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from raft_zmq.core.types import Entry, HardState
from raft_zmq.statemachine import StorageFull
from raft_zmq.storage import RaftStorage

pytestmark = pytest.mark.root

TMPFS_SIZE_MB = 8
ENTRY_DATA_BYTES = 64 * 1024


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    path = str(tmp_path / "disk")
    os.makedirs(path)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m", "tmpfs", path], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def fill(path: str) -> str:
    ballast = os.path.join(path, "ballast")
    with open(ballast, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * size):
                    pass
    return ballast


def entries(first: int, count: int) -> list[Entry]:
    return [
        Entry(i, 1, 0, bytes([i % 251]) * ENTRY_DATA_BYTES) for i in range(first, first + count)
    ]


def test_a_save_on_a_full_disk_raises_storage_full_and_writes_nothing(small_disk):
    storage = RaftStorage.open(os.path.join(small_disk, "log"))
    try:
        storage.save(HardState(1, "a", 0), entries(1, 2))
        ballast = fill(small_disk)
        with pytest.raises(StorageFull):
            storage.save(HardState(1, "a", 2), entries(3, 8))
        assert storage.last_index() == 2
        assert storage.initial_state()[0].commit == 0
        os.remove(ballast)
        storage.save(HardState(1, "a", 2), entries(3, 8))  # the same save, once there is room
        assert storage.last_index() == 10
    finally:
        storage.close()
    reopened = RaftStorage.open(os.path.join(small_disk, "log"))
    try:
        assert reopened.last_index() == 10
        assert reopened.entries(3, 4, 1 << 30)[0].data == entries(3, 1)[0].data
    finally:
        reopened.close()
