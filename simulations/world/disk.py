"""The Raft log's disk, simulated: what is durable, and the one write that may be in flight.

The driver hands each Ready's hard state, entries and snapshot to ``begin_write``; they become
durable only at ``complete_write``, which the node calls when the simulated sync finishes (after
a latency the seed draws). Until then the core reads the log as it was: the durable part is the
only thing ``LogReader`` sees. A crash (``crash``) drops the write in flight, exactly what a
process killed before its fsync returned loses; everything completed survives. A write is all or
nothing, as an LMDB transaction is.

This is what makes "acknowledge before the entries are synced" observable: under that planted bug
a follower's acknowledgement leaves at ``begin_write``, and a crash before ``complete_write``
leaves the leader counting an entry that no longer exists on the follower.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.log import MemoryLog
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, HardState, SnapshotMeta

_ALL_BYTES = 1 << 62  # "no byte limit" for reads of the durable log


@attrs.frozen
class PendingWrite:
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: SnapshotMeta | None


@attrs.frozen
class CompletedWrite:
    """What a completed write changed, for the checkers: the term before the first new entry, and
    the entries the write removed from the log (a truncated suffix, or a log replaced by a
    snapshot beyond it)."""

    prev_term: int
    replaced: tuple[Entry, ...]


class SimLog:
    """A ``LogReader`` over the durable log, plus the write in flight. The durable part lives as
    long as the simulated machine: it survives every crash of the node."""

    def __init__(self) -> None:
        self._durable = MemoryLog()
        self._in_flight: PendingWrite | None = None
        self.writes_completed = 0
        self.writes_lost = 0
        # The last durable entry fails its checksum (a fault at a crash): raft_zmq/storage.py
        # then raises StorageCorruptError at open and the node refuses to start (finding 6).
        self.corrupt_last = False

    @classmethod
    def bootstrapped(cls, config: ClusterConfig) -> SimLog:
        """A new node's log: the initial configuration at index 1, term 1 (as raft_zmq.node's
        bootstrap writes it)."""
        log = cls()
        log._durable.append([Entry(1, 1, EntryKind.CONFIG, encode_config(config))])
        log._durable.set_hard_state(HardState(term=1))
        return log

    # --- LogReader (the durable part only) ------------------------------------------------------
    def first_index(self) -> int:
        return self._durable.first_index()

    def last_index(self) -> int:
        return self._durable.last_index()

    def term(self, index: int) -> int:
        return self._durable.term(index)

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        return self._durable.entries(lo, hi, max_bytes)

    # --- durable state read at start ------------------------------------------------------------
    @property
    def hard_state(self) -> HardState:
        return self._durable.hard_state

    @property
    def snapshot(self) -> SnapshotMeta:
        return self._durable.snapshot

    @property
    def write_in_flight(self) -> bool:
        return self._in_flight is not None

    # --- writes ---------------------------------------------------------------------------------
    def begin_write(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None,
    ) -> PendingWrite:
        assert self._in_flight is None, "one synced write at a time"
        write = PendingWrite(hard_state, tuple(entries), snapshot)
        self._in_flight = write
        return write

    def complete_write(self, write: PendingWrite) -> CompletedWrite:
        assert self._in_flight is write, "completing a write that is not in flight"
        self._in_flight = None
        durable = self._durable
        replaced: list[Entry] = []
        if write.snapshot is not None:
            replaced.extend(self._dropped_by_snapshot(write.snapshot))
            durable.install_snapshot(write.snapshot)
        if write.hard_state is not None:
            durable.set_hard_state(write.hard_state)
        prev_term = 0
        if write.entries:
            first = write.entries[0].index
            prev_term = durable.term(first - 1)
            if first <= durable.last_index():
                replaced.extend(durable.entries(first, durable.last_index() + 1, _ALL_BYTES))
            durable.append(write.entries)
        self.writes_completed += 1
        return CompletedWrite(prev_term, tuple(replaced))

    def _dropped_by_snapshot(self, meta: SnapshotMeta) -> list[Entry]:
        """Entries after the snapshot that installing it discards (they disagree with it)."""
        durable = self._durable
        within = durable.first_index() <= meta.index <= durable.last_index()
        if within and durable.term(meta.index) == meta.term:
            return []
        lo = max(meta.index + 1, durable.first_index())
        if lo > durable.last_index():
            return []
        return durable.entries(lo, durable.last_index() + 1, _ALL_BYTES)

    def compact(self, meta: SnapshotMeta) -> None:
        """A local snapshot covers the prefix up to ``meta.index`` (its own small transaction)."""
        assert self._in_flight is None, "compaction happens between rounds"
        self._durable.compact(meta)

    def crash(self) -> PendingWrite | None:
        """The process died: the write in flight never reached the disk."""
        lost, self._in_flight = self._in_flight, None
        if lost is not None:
            self.writes_lost += 1
        return lost
