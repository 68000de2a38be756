"""The marker protocol of a state written without sync (doq/state/unsynced.py), as the state
machine applies it at open: who trusts, who discards, who refuses."""

from __future__ import annotations

import os

import pytest

from doq.commands import CreateQueue, QueueType
from doq.state import unsynced
from doq.state.machine import QueueStateMachine, StateUntrustedError

from .helpers import TEST_MAP_SIZE_BYTES, Log


def _open(path: str, boot_file: str, **kwargs: object) -> QueueStateMachine:
    return QueueStateMachine(
        path, map_size_bytes=TEST_MAP_SIZE_BYTES, boot_id_path=boot_file, **kwargs
    )


@pytest.fixture
def written(tmp_path):
    """A state a node wrote without sync under boot A and that was then killed (the marker it
    leaves), and the boot file."""
    path, boot_file = str(tmp_path / "state"), str(tmp_path / "boot_id")
    with open(boot_file, "w") as f:
        f.write("boot-a")
    sm = _open(path, boot_file, apply_sync=False)
    assert unsynced.is_trusted(path, "boot-a") and not unsynced.is_trusted(path, "boot-b")
    sm.apply(Log().entries(CreateQueue(1, "q", QueueType.DELAYED, 30)))
    sm.close()
    unsynced.mark_unsynced(path, "boot-a")
    return path, boot_file


def test_another_opener_refuses_a_state_left_untrusted_and_changes_nothing(written):
    path, boot_file = written
    with open(boot_file, "w") as f:
        f.write("boot-b")
    with pytest.raises(StateUntrustedError, match="start the node"):
        _open(path, boot_file)
    assert os.path.exists(os.path.join(path, "data.mdb"))
    assert not unsynced.is_trusted(path, "boot-b")


def test_another_opener_under_the_same_boot_syncs_and_drops_the_marker(written):
    path, boot_file = written
    sm = _open(path, boot_file)
    try:
        assert sm.last_applied() == (1, 1)
    finally:
        sm.close()
    assert not os.path.exists(os.path.join(path, unsynced.MARKER_NAME))


def test_a_node_discards_a_state_left_untrusted(written):
    path, boot_file = written
    with open(boot_file, "w") as f:
        f.write("boot-b")
    sm = _open(path, boot_file, apply_sync=False)
    try:
        assert sm.last_applied() == (0, 0)
        assert sm.queue_info("q") is None
    finally:
        sm.close()


def test_without_a_boot_id_every_restart_counts_as_a_reboot(written, tmp_path):
    path, _ = written
    assert unsynced.boot_id(str(tmp_path / "no-such-file")) is None
    assert not unsynced.is_trusted(path, None)
