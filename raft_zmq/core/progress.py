"""The leader's view of each follower: how far it matches, what to send next, and how much may be
on the wire at once (etcd's tracker/Progress).

- PROBE: we do not know where the follower's log matches; send one AppendEntries at a time and wait
  for the answer (or the next heartbeat) before sending another.
- REPLICATE: the follower matches up to ``match``; stream entries optimistically (``next`` moves on
  as soon as a message is sent), with at most ``max_inflight`` messages unacknowledged, so that a
  slow follower costs bounded memory.
- SNAPSHOT: the follower needs entries we compacted away; a snapshot is on its way and nothing else
  is sent until it is installed or reported failed.
"""

from __future__ import annotations

import enum
from collections import deque

import attrs


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@attrs.define
class Inflights:
    """The last index of each AppendEntries in flight, oldest first, bounded by a count and a
    byte total. Two parallel queues of ints rather than a queue of pairs: nothing is allocated
    per message sent."""

    max_count: int
    max_bytes: int
    _last_indexes: deque[int] = attrs.field(factory=deque)
    _sizes: deque[int] = attrs.field(factory=deque)  # the entries' bytes of each message
    _bytes: int = 0

    def add(self, last_index: int, size_bytes: int) -> None:
        assert not self.full(), "sent past the in-flight window"
        assert not self._last_indexes or last_index > self._last_indexes[-1]
        self._last_indexes.append(last_index)
        self._sizes.append(size_bytes)
        self._bytes += size_bytes

    def free_to(self, index: int) -> None:
        """Forget every message whose entries end at or before ``index`` (acknowledged)."""
        last_indexes, sizes = self._last_indexes, self._sizes
        while last_indexes and last_indexes[0] <= index:
            last_indexes.popleft()
            self._bytes -= sizes.popleft()

    def free_first_one(self) -> None:
        if self._last_indexes:
            self.free_to(self._last_indexes[0])

    def reset(self) -> None:
        self._last_indexes.clear()
        self._sizes.clear()
        self._bytes = 0

    def full(self) -> bool:
        return len(self._last_indexes) >= self.max_count or self._bytes >= self.max_bytes

    def __len__(self) -> int:
        return len(self._last_indexes)


@attrs.define
class Progress:
    match: int
    next: int
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False  # PROBE: an AppendEntries is out; wait for its answer or a heartbeat
    pending_snapshot: int = 0  # SNAPSHOT: the index of the snapshot being sent
    recent_active: bool = False  # heard from since the last check-quorum round
    commit_sent: int = 0  # the commit index carried by the last AppendEntries sent

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: int, size_bytes: int) -> None:
        """Record an AppendEntries carrying entries up to ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflights.add(last_index, size_bytes)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """A success up to ``index``: returns whether it told us anything new."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, hint_next: int) -> bool:
        """A rejection of the AppendEntries whose prev_index was ``rejected``. Returns False when
        the rejection is stale (answers a message sent before something we already learnt)."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint_next), self.match + 1)
        self.probe_sent = False
        return True
