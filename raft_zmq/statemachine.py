"""The contract between the Raft driver and the replicated state machine it feeds.

Like hashicorp/raft's FSM: ``apply`` must be deterministic, a function of the entries and the
current state only (no clock, no randomness, no node identity), and it is never called concurrently
with ``restore``. ``snapshot`` may run in a worker thread while ``apply`` continues in the driver's
thread, so it must read one consistent point (an LMDB read transaction does exactly that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from raft_zmq.core.types import Entry


class StorageFull(Exception):
    """A store has no room for a write: the disk is full, or an LMDB map cannot grow further.

    The contract for whoever raises it (the state machine's ``apply``, the Raft log's ``save``):
    nothing of the failed write took effect (the LMDB transaction was aborted), so the same write
    can be tried again once room is made. The driver does exactly that, after a delay, instead of
    crashing: a committed entry that every replica must apply cannot be skipped, and a process
    that died on it would die again at every restart (docs/operations.md, "Disk full").
    """


class StateMachine(Protocol):
    def last_applied(self) -> tuple[int, int]:
        """The (index, term) of the last entry applied durably; (0, 0) when fresh. The driver
        resumes applying after it, so this must be written in the same transaction as the
        changes the entry caused."""
        ...

    def apply(self, entries: Sequence[Entry]) -> list[Any]:
        """Apply committed entries in order, in one transaction, and return one result per entry.
        NOOP and CONFIG entries carry nothing for the state machine but still advance
        ``last_applied``; their result is ``None``. A command the state machine rejects returns
        a rejection value; apply raises only for a fault of the store itself: ``StorageFull`` when
        there is no room (nothing applied; the driver retries the same entries later)."""
        ...

    def snapshot(self, path: str) -> tuple[int, int]:
        """Write a consistent snapshot of the whole state to the file ``path`` and return the
        (index, term) it covers. The file must be durable when this returns."""
        ...

    # Optional: ``snapshot_command(path) -> list[str]``, the argv of a process that writes the same
    # snapshot to ``path`` (durably), prints ``<index> <term>`` on its last line of stdout and exits
    # 0. The node then runs that process instead of calling ``snapshot`` in a worker thread, so a
    # snapshot written in Python does not hold the node's GIL (raft_zmq/snapshot_writer.py).

    def restore(self, path: str) -> tuple[int, int]:
        """Replace the whole state, atomically, with the snapshot in the file ``path``; return
        the (index, term) it covers."""
        ...

    def close(self) -> None: ...
