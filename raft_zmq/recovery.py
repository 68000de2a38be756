"""What a starting node does before it builds its core, the same in production (raft_zmq/node.py)
and in the simulator (simulations/node.py): bring the state machine up to the log's start, and
pick the snapshot to stream to lagging followers.

The snapshot store may hold files that the log never adopted: a snapshot received from a leader
and finalized, then refused by the core (a stale term) or not installed because the process died
first. Such a file may be the newest one. So the state machine is restored from the snapshot the
log names (its snapshot metadata's index and term), never from the newest file; and the snapshot
registered for streaming is the newest one at or below what the state machine has applied
(docs/raft.md, "Snapshots and compaction").
"""

from __future__ import annotations

import logging

from raft_zmq.core.types import SnapshotMeta
from raft_zmq.snapshots import SnapshotStore
from raft_zmq.statemachine import StateMachine

logger = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """The node's files cannot make a consistent start (a repair is needed: docs/operations.md)."""


def recover_state_machine(
    state_machine: StateMachine, store: SnapshotStore, log_snapshot: SnapshotMeta
) -> None:
    """After a crash between installing a received snapshot in the log and restoring the state
    machine from it, the state machine is behind the log's start: restore that snapshot."""
    applied, _ = state_machine.last_applied()
    if applied >= log_snapshot.index:
        return
    snapshot = store.find(log_snapshot.index, log_snapshot.term)
    if snapshot is None:
        raise RecoveryError(
            f"state machine applied {applied} but the log starts after {log_snapshot.index}"
            f" (term {log_snapshot.term}) and the snapshot it names is missing"
        )
    logger.info("restoring the state machine from snapshot %s", snapshot.meta)
    state_machine.restore(snapshot.path)


def streamable_snapshot(store: SnapshotStore, applied: int, log_start: int) -> SnapshotMeta | None:
    """The newest snapshot at or below ``applied`` that the log has not been compacted past
    (its index is at least ``log_start - 1``): the one to stream to followers behind the log."""
    for snapshot in reversed(store.snapshots()):
        if snapshot.meta.index <= applied:
            return snapshot.meta if snapshot.meta.index >= log_start - 1 else None
    return None
