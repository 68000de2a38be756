"""Replicas agree, and a replica survives restarts, faults, snapshots and poisoned entries.

- Determinism (docs/design.md, rule 4): one random log applied to two fresh states gives identical
  results and identical logical dumps; so does the same log with a snapshot taken and installed
  into a fresh state half way.
- The applied index is written with the changes: a restart in the middle resumes exactly after
  the last applied entry, and a fault inside a batch leaves nothing of it behind.
- A damaged snapshot changes nothing; a poisoned entry is a rejection and the next one applies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doq.commands import (
    COMMAND_FORMAT_VERSION,
    CreateQueue,
    Dequeue,
    Enqueue,
    NewMessage,
    QueueType,
    RestoreState,
    encode_command,
)
from doq.state import handlers
from doq.state.machine import ApplyOrderError, QueueStateMachine
from doq.state.results import Enqueued, RejectCode, Rejected, StateRestored
from doq.state.snapshot import SnapshotFormatError
from raft_zmq.core.types import EntryKind

from .helpers import Log, open_machine, run
from .strategies import IN_CI, QUEUE_NAMES, START_MS, batches, create_queue

DETERMINISM_EXAMPLES = 15 if IN_CI else 40
T = START_MS

logs = st.lists(batches, min_size=1, max_size=12)


def stamp(log_batches: list[list[tuple[Any, int]]]) -> list[list[Any]]:
    """Give every command a time: the clock moves a second per batch, plus each offset."""
    return [
        [attrs.evolve(cmd, ts_ms=T + i * 1000 + offset) for cmd, offset in batch]
        for i, batch in enumerate(log_batches)
    ]


def setup_commands() -> list[Any]:
    return [
        CreateQueue(T, n, t, 5)
        for n, t in zip(QUEUE_NAMES, (QueueType.FAIR,) * 2 + (QueueType.DELAYED,))
    ]


def apply_all(sm: QueueStateMachine, log: Log, stamped: list[list[Any]]) -> list[Any]:
    return [r for batch in stamped for r in run(sm, log, *batch)]


@settings(
    max_examples=DETERMINISM_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(log_batches=logs, creates=st.lists(create_queue, min_size=3, max_size=3))
def test_two_fresh_replicas_reach_identical_states(
    tmp_path_factory: pytest.TempPathFactory,
    log_batches: list[list[tuple[Any, int]]],
    creates: list[Any],
) -> None:
    setup = [attrs.evolve(c, name=n, ts_ms=T) for c, n in zip(creates, QUEUE_NAMES)]
    stamped = [setup, *stamp(log_batches)]
    half = len(stamped) // 2
    base = tmp_path_factory.mktemp("replicas")
    a, b, c = (open_machine(str(base / name)) for name in "abc")
    log_a, log_b, log_c = Log(), Log(), Log()
    try:
        results_a = apply_all(a, log_a, stamped)
        results_b = apply_all(b, log_b, stamped)
        assert results_a == results_b
        assert a.logical_dump() == b.logical_dump()

        # The third replica installs a snapshot of a fourth half way, then applies the rest.
        d = open_machine(str(base / "d"))
        apply_all(d, Log(), stamped[:half])
        index_term = d.snapshot(str(base / "snap"))
        d.close()
        assert c.restore(str(base / "snap")) == index_term
        log_c.index = index_term[0]
        assert apply_all(c, log_c, stamped[half:]) == results_a[sum(map(len, stamped[:half])) :]
        assert c.logical_dump() == a.logical_dump()
    finally:
        for sm in (a, b, c):
            sm.close()


def test_a_restart_resumes_after_the_last_applied_entry(tmp_path: Path) -> None:
    stamped = [setup_commands()] + [
        [Enqueue(T + i, "q0", (NewMessage(i, 0, "x", f"g{i % 3}"),)), Dequeue(T + i, "q0")]
        for i in range(20)
    ]
    straight = open_machine(str(tmp_path / "straight"))
    expected = apply_all(straight, Log(), stamped)

    log = Log()
    sm = open_machine(str(tmp_path / "restarted"))
    got = apply_all(sm, log, stamped[:8])
    sm.close()
    sm = open_machine(str(tmp_path / "restarted"))
    assert sm.last_applied() == (log.index, log.term)
    with pytest.raises(ApplyOrderError):  # the driver may not apply an entry twice...
        sm.apply(Log().entries(Dequeue(T, "q0")))
    skipping = Log()
    skipping.index = log.index + 1
    with pytest.raises(ApplyOrderError):  # ...nor skip one
        sm.apply(skipping.entries(Dequeue(T, "q0")))
    got += apply_all(sm, log, stamped[8:])
    assert got == expected
    assert sm.logical_dump() == straight.logical_dump()
    sm.close()
    straight.close()


def test_a_fault_inside_a_batch_leaves_nothing_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = open_machine(str(tmp_path / "s"))
    log = Log()
    run(sm, log, *setup_commands())
    before, applied = sm.logical_dump(), sm.last_applied()

    def disk_full(*_: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setitem(handlers.HANDLERS, Dequeue, disk_full)
    batch = log.entries(Enqueue(T, "q0", (NewMessage(1, 0, "x"),)), Dequeue(T, "q0"))
    with pytest.raises(OSError, match="disk full"):
        sm.apply(batch)
    assert sm.logical_dump() == before and sm.last_applied() == applied
    monkeypatch.undo()
    assert isinstance(sm.apply(batch)[0], Enqueued)  # the driver retries the same entries
    sm.close()


def test_the_durability_flags_reach_lmdb(tmp_path: Path) -> None:
    sm = QueueStateMachine(str(tmp_path / "s"), map_size_bytes=1 << 24)
    flags = sm._env.flags()
    assert flags["sync"] and not flags["metasync"]  # one fdatasync per apply batch
    sm.close()
    sm = QueueStateMachine(str(tmp_path / "s"), map_size_bytes=1 << 24, metasync=True)
    assert sm._env.flags()["metasync"]
    sm.close()


def test_poisoned_entries_are_rejected_and_the_next_entry_applies(
    machine: QueueStateMachine, log: Log
) -> None:
    good = encode_command(CreateQueue(T, "q", QueueType.DELAYED, 5))
    poisons = [b"", b"\xff\xff", bytes([COMMAND_FORMAT_VERSION, 4]) + b"\xc1", good[:-3]]
    results = machine.apply(log.entries(*poisons, good, EntryKind.NOOP, EntryKind.CONFIG))
    assert all(isinstance(r, Rejected) and r.code is RejectCode.INVALID for r in results[:4])
    assert results[4].created
    assert results[5:] == [None, None]
    assert machine.last_applied() == (log.index, log.term)
    assert machine.apply([]) == []


# --- snapshots -----------------------------------------------------------------------------------


def filled(path: str, messages: int = 50) -> tuple[QueueStateMachine, Log]:
    sm, log = open_machine(path), Log()
    run(sm, log, *setup_commands())
    new = tuple(NewMessage(i, 0, "x" * 50, f"g{i % 7}") for i in range(messages))
    run(sm, log, Enqueue(T, "q0", new), Dequeue(T, "q0", count=5))
    return sm, log


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],
        lambda data: data + b"\x00",
        lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:],
        lambda data: b"NOTASNAP" + data[8:],
        lambda data: data[:8] + b"\x00\x63" + data[10:],  # format version 99
    ],
    ids=["truncated", "trailing", "bit-flip", "magic", "version"],
)
def test_a_damaged_snapshot_changes_nothing(tmp_path: Path, damage: Any) -> None:
    source, _ = filled(str(tmp_path / "source"))
    source.snapshot(str(tmp_path / "snap"))
    source.close()
    (tmp_path / "bad").write_bytes(damage((tmp_path / "snap").read_bytes()))
    target, log = filled(str(tmp_path / "target"), messages=3)
    before = target.logical_dump()
    with pytest.raises(SnapshotFormatError):
        target.restore(str(tmp_path / "bad"))
    assert target.logical_dump() == before
    command = RestoreState(T, (tmp_path / "bad").read_bytes())
    result, after = run(target, log, command, Enqueue(T, "q0", (NewMessage(99, 0, "x"),)))
    assert isinstance(result, Rejected) and result.code is RejectCode.INVALID
    assert isinstance(after, Enqueued)  # the next entry still applies
    target.close()


def test_a_restore_command_replaces_the_state_but_not_time_or_ids(tmp_path: Path) -> None:
    old, _ = filled(str(tmp_path / "old"), messages=4)
    backup_at = old.snapshot(str(tmp_path / "backup"))
    old_dump = old.logical_dump()
    old.close()
    sm, log = filled(str(tmp_path / "live"), messages=40)
    late = T + 3_600_000
    run(sm, log, Enqueue(late, "q1", (NewMessage(1 << 40, 0, "new"),)))
    floor, clock = sm.id_floor(), sm.clock_ms()
    [result] = run(sm, log, RestoreState(late, (tmp_path / "backup").read_bytes()))
    assert result == StateRestored(*backup_at)
    dump = sm.logical_dump()
    assert dump["messages"] == old_dump["messages"] and dump["queues"] == old_dump["queues"]
    assert sm.id_floor() == floor and sm.clock_ms() == clock
    assert sm.last_applied() == (log.index, log.term)
    sm.close()


def test_a_snapshot_taken_while_applying_is_one_consistent_point(tmp_path: Path) -> None:
    sm, log = filled(str(tmp_path / "s"), messages=2_000)
    snapshots = []

    def take_snapshots() -> None:
        for i in range(5):
            path = str(tmp_path / f"snap{i}")
            snapshots.append((path, sm.snapshot(path)))

    worker = threading.Thread(target=take_snapshots)
    worker.start()
    for _ in range(40):
        run(sm, log, Dequeue(T, "q0", count=10, ack=True))
    worker.join()
    for path, index_term in snapshots:
        replica = open_machine(path + ".state")
        assert replica.restore(path) == index_term
        info = replica.queue_info("q0")
        dump = replica.logical_dump()
        assert info.ready + info.unacked == len([k for k, _ in dump["messages"] if k[0] == 1])
        replica.close()
    sm.close()
