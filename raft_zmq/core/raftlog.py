"""The log as the consensus core sees it: durable entries read through a ``LogReader``, plus the
entries (and possibly a received snapshot) the core has produced but the driver has not yet
persisted. Also the commit index, and how far committed entries have been handed out to apply.

Invariants (asserted): first_index - 1 <= applied <= committed <= last_index; the commit index
never decreases; an entry at or below the commit index is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

from raft_zmq.core.log import LogReader, entry_size
from raft_zmq.core.types import Entry, SnapshotMeta


class RaftLog:
    def __init__(self, reader: LogReader, committed: int, applied: int) -> None:
        self.reader = reader
        self.unstable: list[Entry] = []
        # Index of unstable[0]; entries of the reader at or after it are about to be overwritten.
        self.unstable_offset = reader.last_index() + 1
        self.pending_snapshot: SnapshotMeta | None = None
        snapshot_index = reader.first_index() - 1
        # The persisted commit index may lag (it is written only alongside entries), but anything
        # the state machine applied was committed: start from the larger of the two.
        assert applied <= reader.last_index(), "applied entries are durable in the log"
        self.committed = min(max(committed, applied, snapshot_index), reader.last_index())
        self.applied = max(applied, snapshot_index)

    # --- reading ---------------------------------------------------------------------------------
    def first_index(self) -> int:
        if self.pending_snapshot is not None:
            return self.pending_snapshot.index + 1
        return self.reader.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable[-1].index
        if self.pending_snapshot is not None:
            return self.pending_snapshot.index
        return self.unstable_offset - 1

    def term(self, index: int) -> int | None:
        """The term at ``index``, or None when it is compacted away or beyond the log."""
        if self.pending_snapshot is not None:
            if index == self.pending_snapshot.index:
                return self.pending_snapshot.term
            if index < self.pending_snapshot.index:
                return None
        if index >= self.unstable_offset:
            offset = index - self.unstable_offset
            return self.unstable[offset].term if offset < len(self.unstable) else None
        if index < self.reader.first_index() - 1:
            return None
        try:
            return self.reader.term(index)
        except IndexError:
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None, "the term of the last entry is always known"
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Paper §5.4.1: a candidate's log is at least as up to date as ours."""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``lo`` to ``hi - 1`` (at least one when lo < hi), bounded by ``max_bytes``.
        The caller checks that ``lo`` is not compacted away."""
        assert self.first_index() <= lo, (lo, self.first_index())
        assert hi <= self.last_index() + 1, (hi, self.last_index())
        out: list[Entry] = []
        if lo < min(hi, self.unstable_offset):
            out = self.reader.entries(lo, min(hi, self.unstable_offset), max_bytes)
            if out[-1].index + 1 < min(hi, self.unstable_offset):
                return out  # the byte budget ran out inside the durable part
        start = max(lo, self.unstable_offset)
        if start >= hi:
            return out  # the range ends before the unstable tail (a negative slice would wrap)
        size = sum(entry_size(e) for e in out)
        for entry in self.unstable[start - self.unstable_offset : hi - self.unstable_offset]:
            size += entry_size(entry)
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term``, or the first index minus one
        when no such entry remains (a compacted index is returned as is). Terms never decrease
        along a log, so a binary search finds it: etcd's findConflictByTerm, the fast backtracking
        that skips a whole term per round trip instead of one entry."""
        floor = self.first_index() - 1
        index = min(index, self.last_index())
        if index <= floor:
            return index
        if self._term_or_fail(index) <= term:
            return index
        lo, hi = floor, index  # term(hi) > term; lo is the floor or has term(lo) <= term
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._term_or_fail(mid) <= term:
                lo = mid
            else:
                hi = mid
        return lo

    def _term_or_fail(self, index: int) -> int:
        term = self.term(index)
        assert term is not None, f"term of {index} within the log must be known"
        return term

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry that is new or disagrees with our log; 0 if none is."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    # --- changing ----------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, replacing any suffix from the first one's index on."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.committed, f"replacing committed entry {first} <= {self.committed}"
        assert first <= self.last_index() + 1, "a gap in the log"
        if first == self.unstable_offset + len(self.unstable):
            self.unstable.extend(entries)
        elif first <= self.unstable_offset:
            self.unstable_offset = first
            self.unstable = list(entries)
        else:
            del self.unstable[first - self.unstable_offset :]
            self.unstable.extend(entries)

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        assert index <= self.last_index(), f"commit {index} beyond last index {self.last_index()}"
        self.committed = index
        return True

    def restore(self, snapshot: SnapshotMeta) -> None:
        """Replace the log with a received snapshot (persisted by the driver at the next Ready)."""
        assert snapshot.index > self.committed
        self.pending_snapshot = snapshot
        self.unstable = []
        self.unstable_offset = snapshot.index + 1
        self.committed = snapshot.index

    # --- the driver's progress ------------------------------------------------------------
    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable)

    def next_committed(self, max_bytes: int) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if lo > self.committed:
            return []
        return self.entries(lo, self.committed + 1, max_bytes)

    def stable_to(self, entries: Sequence[Entry], snapshot: SnapshotMeta | None) -> None:
        """The driver persisted ``snapshot`` and ``entries`` (those of one Ready)."""
        if snapshot is not None:
            assert self.pending_snapshot == snapshot
            self.pending_snapshot = None
            self.applied = max(self.applied, snapshot.index)
        if entries:
            assert entries[0].index == self.unstable_offset
            assert entries[-1].index == self.last_index()
            self.unstable = []
            self.unstable_offset = entries[-1].index + 1
        assert self.reader.last_index() == self.last_index() or self.unstable, (
            "the driver's storage must hold what it persisted"
        )

    def applied_to(self, index: int) -> None:
        assert self.applied <= index <= self.committed, (self.applied, index, self.committed)
        self.applied = index
