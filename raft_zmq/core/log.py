"""The durable log as the core sees it: read-only, through ``LogReader``.

The driver owns the real storage (``raft_zmq.storage`` on LMDB, or the simulator's stand-in); the
core reads from it only for entries it no longer holds in memory (a lagging follower, a restart)
and never writes to it: what to write comes out of the core in ``Ready`` and the driver writes it.

``MemoryLog`` is a complete in-memory ``LogReader`` with the same write operations as the LMDB
storage; the core's unit tests and the simulator use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raft_zmq.core.types import Entry, HardState, SnapshotMeta


class LogReader(Protocol):
    """Read access to the entries that are durable. Indexes run from ``first_index()`` to
    ``last_index()`` inclusive; before the first index lies the snapshot."""

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int:
        """The term of the entry at ``index``; for ``first_index() - 1`` the snapshot's term.
        Raises ``IndexError`` outside that range."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``lo`` to ``hi - 1``; stops early once ``max_bytes`` of data are collected,
        but always returns at least one entry when ``lo < hi``."""
        ...


def entry_size(entry: Entry) -> int:
    """Bytes an entry weighs for batching limits (its data plus a fixed header)."""
    return len(entry.data) + 24


class MemoryLog:
    """An in-memory log with the storage's write operations: append (truncating a conflicting
    suffix), snapshot installation, compaction, and hard state."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot = SnapshotMeta()
        self._entries: list[Entry] = []

    # LogReader ------------------------------------------------------------------------------
    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.snapshot.index + len(self._entries)

    def term(self, index: int) -> int:
        if index == self.snapshot.index:
            return self.snapshot.term
        offset = index - self.snapshot.index - 1
        if offset < 0 or offset >= len(self._entries):
            raise IndexError(index)
        return self._entries[offset].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        if lo < self.first_index() or hi > self.last_index() + 1:
            raise IndexError((lo, hi))
        out: list[Entry] = []
        size = 0
        base = self.snapshot.index + 1
        for entry in self._entries[lo - base : hi - base]:
            size += entry_size(entry)
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    # writes (the driver's side) ---------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first < self.first_index() or first > self.last_index() + 1:
            window = f"{self.first_index()}..{self.last_index() + 1}"
            raise ValueError(f"append at {first} outside {window}")
        del self._entries[first - self.snapshot.index - 1 :]
        self._entries.extend(entries)

    def set_hard_state(self, hard_state: HardState) -> None:
        self.hard_state = hard_state

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the log with a snapshot: keep entries after it only if they agree with it."""
        keep: list[Entry] = []
        within = self.first_index() <= meta.index <= self.last_index()
        if within and self.term(meta.index) == meta.term:
            keep = self._entries[meta.index - self.snapshot.index :]
        self.snapshot = meta
        self._entries = keep

    def compact(self, meta: SnapshotMeta) -> None:
        """Drop the entries a local snapshot now covers."""
        if meta.index <= self.snapshot.index:
            return
        if meta.index > self.last_index():
            raise ValueError("cannot compact beyond the last index")
        self._entries = self._entries[meta.index - self.snapshot.index :]
        self.snapshot = meta
