"""RaftStorage against MemoryLog, the in-memory reference: under any sequence of group commits
(with truncation of a conflicting suffix), snapshot installations, compactions and restarts, the
LMDB log must read exactly like the model, and refuse exactly what the model refuses."""

from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raft_zmq.core.log import MemoryLog
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, HardState, Server, SnapshotMeta
from raft_zmq.storage import RaftStorage

# A map this small fills up within a few steps, so map growth runs under random operations too.
TINY_MAP_SIZE_BYTES = 64 * 1024
MAX_BATCH_ENTRIES = 12
MAX_DATA_BYTES = 300

votes = st.sampled_from([None, "node-0", "node-1", "nœud-2"])
hard_states = st.builds(
    HardState, term=st.integers(0, 2**40), vote=votes, commit=st.integers(0, 500)
)
configs = st.sampled_from(
    [
        ClusterConfig(),
        ClusterConfig((Server("node-0", "127.0.0.1:7000"), Server("node-1", "127.0.0.1:7001", 1))),
    ]
)


class StorageMatchesMemoryLog(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="raft-storage-model-")
        self.storage = RaftStorage.open(
            self.directory, sync=False, map_size_bytes=TINY_MAP_SIZE_BYTES
        )
        self.model = MemoryLog()

    def teardown(self) -> None:
        self.storage.close()
        shutil.rmtree(self.directory)

    def _prev_term(self, index: int) -> int:
        return self.model.term(index - 1)

    @rule(
        data=st.data(),
        hard_state=st.none() | hard_states,
        count=st.integers(0, MAX_BATCH_ENTRIES),
    )
    def save(self, data: st.DataObject, hard_state: HardState | None, count: int) -> None:
        """A group commit: optional hard state, entries appended at or before the end."""
        first = data.draw(st.integers(self.model.first_index(), self.model.last_index() + 1))
        term = self._prev_term(first)
        entries = []
        for index in range(first, first + count):
            term += data.draw(st.integers(0, 2))
            kind = data.draw(st.sampled_from(list(EntryKind)))
            payload = data.draw(st.binary(max_size=MAX_DATA_BYTES))
            entries.append(Entry(index, term, int(kind), payload))
        self.storage.save(hard_state, entries)
        if hard_state is not None:
            self.model.set_hard_state(hard_state)
        self.model.append(entries)

    @rule(data=st.data(), past_end=st.booleans())
    def append_outside_the_log_is_refused(self, data: st.DataObject, past_end: bool) -> None:
        if past_end or self.model.first_index() == 1:
            first = self.model.last_index() + data.draw(st.integers(2, 5))
        else:
            first = data.draw(st.integers(1, self.model.first_index() - 1))
        entries = [Entry(first, 1, 0, b"x")]
        model_error = _error_of(lambda: self.model.append(entries))
        storage_error = _error_of(lambda: self.storage.save(HardState(term=99), entries))
        assert model_error is ValueError
        assert storage_error is ValueError

    @rule(data=st.data(), agree=st.booleans(), config=configs)
    def install_snapshot(self, data: st.DataObject, agree: bool, config: ClusterConfig) -> None:
        index = data.draw(st.integers(0, self.model.last_index() + 3))
        in_log = self.model.first_index() - 1 <= index <= self.model.last_index()
        term = self.model.term(index) if agree and in_log else data.draw(st.integers(0, 50))
        meta = SnapshotMeta(index=index, term=term, config=config)
        self.storage.install_snapshot(meta)
        self.model.install_snapshot(meta)

    @rule(data=st.data(), config=configs)
    def compact(self, data: st.DataObject, config: ClusterConfig) -> None:
        lo = max(0, self.model.first_index() - 2)
        index = data.draw(st.integers(lo, self.model.last_index() + 2))
        in_log = self.model.first_index() - 1 <= index <= self.model.last_index()
        term = self.model.term(index) if in_log else 7
        meta = SnapshotMeta(index=index, term=term, config=config)
        model_error = _error_of(lambda: self.model.compact(meta))
        storage_error = _error_of(lambda: self.storage.compact(meta))
        assert storage_error is model_error

    @rule()
    def reopen(self) -> None:
        """A restart: everything the model holds was durable."""
        self.storage.close()
        self.storage = RaftStorage.open(
            self.directory, sync=False, map_size_bytes=TINY_MAP_SIZE_BYTES
        )

    @precondition(lambda self: self.model.last_index() >= self.model.first_index())
    @rule(data=st.data(), max_bytes=st.integers(0, 2000))
    def read_a_range(self, data: st.DataObject, max_bytes: int) -> None:
        lo = data.draw(st.integers(self.model.first_index(), self.model.last_index() + 1))
        hi = data.draw(st.integers(lo, self.model.last_index() + 1))
        assert self.storage.entries(lo, hi, max_bytes) == self.model.entries(lo, hi, max_bytes)

    @invariant()
    def reads_like_the_model(self) -> None:
        first, last = self.model.first_index(), self.model.last_index()
        assert (self.storage.first_index(), self.storage.last_index()) == (first, last)
        assert self.storage.initial_state() == (self.model.hard_state, self.model.snapshot)
        for index in range(first - 1, last + 1):
            assert self.storage.term(index) == self.model.term(index)
        for outside in (first - 2, last + 1):
            assert _error_of(lambda i=outside: self.storage.term(i)) is IndexError
        assert self.storage.entries(first, last + 1, 10**9) == self.model.entries(
            first, last + 1, 10**9
        )
        for lo, hi in ((first - 1, last + 1), (first, last + 2)):
            assert _error_of(lambda a=lo, b=hi: self.storage.entries(a, b, 100)) is IndexError


def _error_of(call: object) -> type[BaseException] | None:
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return type(exc)
    return None


StorageMatchesMemoryLog.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_storage_matches_memory_log = StorageMatchesMemoryLog.TestCase
