"""The core's view of the log (durable entries + the unstable tail) against naive list slicing,
over many random shapes: this is the code that hands committed entries to the state machine."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raft_zmq.core.log import MemoryLog, entry_size
from raft_zmq.core.raftlog import RaftLog
from raft_zmq.core.types import Entry, EntryKind


def _entry(index: int, size: int) -> Entry:
    return Entry(index, 1, EntryKind.NORMAL, b"x" * size)


@settings(max_examples=400)
@given(
    durable=st.integers(0, 12),
    unstable=st.integers(0, 6),
    sizes=st.lists(st.integers(0, 40), min_size=20, max_size=20),
    data=st.data(),
)
def test_entries_equal_naive_slicing_of_durable_plus_unstable(durable, unstable, sizes, data):
    disk = MemoryLog()
    disk.append([_entry(i, sizes[i]) for i in range(1, durable + 1)])
    log = RaftLog(disk, committed=0, applied=0)
    tail = [_entry(i, sizes[i]) for i in range(durable + 1, durable + unstable + 1)]
    log.append(tail)
    everything = [_entry(i, sizes[i]) for i in range(1, durable + unstable + 1)]
    last = durable + unstable
    lo = data.draw(st.integers(1, last + 1))
    hi = data.draw(st.integers(lo, last + 1))
    max_bytes = data.draw(st.integers(1, 200))
    got = log.entries(lo, hi, max_bytes) if lo < hi else []
    expected = everything[lo - 1 : hi - 1]
    # A prefix of the naive slice, never empty when the range is not, within the byte budget
    # unless a single entry exceeds it.
    assert got == expected[: len(got)]
    if lo < hi:
        assert got
        total = sum(entry_size(e) for e in got)
        assert total <= max_bytes or len(got) == 1
        if len(got) < len(expected):
            assert total + entry_size(expected[len(got)]) > max_bytes


def test_committed_entries_before_an_unstable_tail_are_handed_out_without_gaps():
    """The regression: entries 1-2 durable, 3-4 unstable, commit at 1: a negative slice bound
    used to splice the unstable tail into the committed batch ([1, 3])."""
    disk = MemoryLog()
    disk.append([_entry(1, 1), _entry(2, 1)])
    log = RaftLog(disk, committed=0, applied=0)
    log.append([_entry(3, 1), _entry(4, 1)])
    log.commit_to(1)
    assert [e.index for e in log.next_committed(1 << 20)] == [1]
    log.commit_to(2)
    assert [e.index for e in log.next_committed(1 << 20)] == [1, 2]
