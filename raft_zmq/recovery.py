"""What a starting node does before it builds its core, the same in production (raft_zmq/node.py)
and in the simulator
(simulations/actors/node.py): bring the state machine up to the log's start, and
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
from collections.abc import Callable

from raft_zmq.core.types import SnapshotMeta
from raft_zmq.snapshots import Snapshot, SnapshotStore
from raft_zmq.statemachine import StateMachine

logger = logging.getLogger(__name__)

# A planted bug (issue 10 finding 5 put back): restore and register the newest snapshot file,
# whatever the log names. Only the simulator passes it (``plants=``, simulations/plants.py), to
# prove its checkers see it; production never does.
PLANT_RESTORE_NEWEST_SNAPSHOT = "restore_newest_snapshot"


class RecoveryError(RuntimeError):
    """The node's files cannot make a consistent start (a repair is needed: docs/operations.md)."""


def recover_state_machine(
    state_machine: StateMachine,
    store: SnapshotStore,
    log_snapshot: SnapshotMeta,
    plants: frozenset[str] = frozenset(),
    *,
    log_term: Callable[[int], int | None] | None = None,
) -> None:
    """The state machine is behind the log's start: restore a snapshot the log continues.

    Two ways to get there: a crash between installing a received snapshot in the log and
    restoring the state machine from it (the snapshot the log names), or a state machine that
    kept no durable state of its own and starts empty (doq's state after a machine crash,
    doq/state/unsynced.py). Compaction keeps trailing entries, so the log then names an index
    behind our own newest snapshot, with no file of its own: given ``log_term`` (the log's term at
    an index, None outside it), the newest snapshot file whose (index, term) the log holds is
    taken instead; by log matching it is the state of this log's prefix, and the log holds every
    entry after it."""
    applied, _ = state_machine.last_applied()
    if applied >= log_snapshot.index:
        return
    snapshot = store.find(log_snapshot.index, log_snapshot.term)
    if snapshot is None and log_term is not None:
        snapshot = _continued_by_log(store, log_snapshot.index, log_term)
    if PLANT_RESTORE_NEWEST_SNAPSHOT in plants:
        snapshot = store.latest()
    if snapshot is None:
        raise RecoveryError(
            f"state machine applied {applied} but the log starts after {log_snapshot.index}"
            f" (term {log_snapshot.term}) and the snapshot it names is missing"
        )
    logger.info("restoring the state machine from snapshot %s", snapshot.meta)
    state_machine.restore(snapshot.path)


def _continued_by_log(
    store: SnapshotStore, log_start_index: int, log_term: Callable[[int], int | None]
) -> Snapshot | None:
    for snapshot in reversed(store.snapshots()):
        meta = snapshot.meta
        if meta.index >= log_start_index and log_term(meta.index) == meta.term:
            return snapshot
    return None


def streamable_snapshot(
    store: SnapshotStore, applied: int, log_start: int, plants: frozenset[str] = frozenset()
) -> SnapshotMeta | None:
    """The newest snapshot at or below ``applied`` that the log has not been compacted past
    (its index is at least ``log_start - 1``): the one to stream to followers behind the log."""
    if PLANT_RESTORE_NEWEST_SNAPSHOT in plants:
        latest = store.latest()
        return latest.meta if latest is not None else None
    for snapshot in reversed(store.snapshots()):
        if snapshot.meta.index <= applied:
            return snapshot.meta if snapshot.meta.index >= log_start - 1 else None
    return None
