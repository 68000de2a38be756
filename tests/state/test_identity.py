"""Node numbers assigned through the log, and ID reservations (doq/state/identity.py): unique by
construction where a hash of the node ID collides, the same on every replica, kept by snapshots,
restarts and restores."""

from __future__ import annotations

import zlib
from pathlib import Path

import msgspec
import pytest

from doq.commands import (
    NODE_ID_CHARS_MAX,
    AssignNodeNumber,
    CommandDecodeError,
    ReserveIds,
    RestoreState,
    decode_command,
    encode_command,
)
from doq.ids import ID_MAX, ID_NODE_MAX
from doq.state.machine import QueueStateMachine
from doq.state.results import IdsReserved, NodeNumberAssigned, RejectCode, Rejected

from .helpers import Log, open_machine, run, run_one

T = 1_800_000_000_000


def test_node_ids_that_collide_under_crc32_get_distinct_numbers(
    machine: QueueStateMachine, log: Log
) -> None:
    # The number used to be crc32(node ID) mod 1024: these two had the same one.
    assert zlib.crc32(b"node-9") & ID_NODE_MAX == zlib.crc32(b"node-16") & ID_NODE_MAX
    first, second, again = run(
        machine,
        log,
        AssignNodeNumber(T, "node-9"),
        AssignNodeNumber(T, "node-16"),
        AssignNodeNumber(T, "node-9"),
    )
    assert first == NodeNumberAssigned("node-9", 0)
    assert second == NodeNumberAssigned("node-16", 1)
    assert again == first  # a node keeps its number
    assert (machine.node_number("node-9"), machine.node_number("node-16")) == (0, 1)
    assert machine.node_number("node-2") is None


def test_numbers_are_never_reused_and_run_out_cleanly(machine: QueueStateMachine, log: Log) -> None:
    results = run(machine, log, *(AssignNodeNumber(T, f"n{i}") for i in range(ID_NODE_MAX + 1)))
    assert [r.number for r in results] == list(range(ID_NODE_MAX + 1))
    before = machine.logical_dump()
    refused = run_one(machine, log, AssignNodeNumber(T, "one-too-many"))
    assert isinstance(refused, Rejected) and refused.code is RejectCode.CONFLICT
    after = machine.logical_dump()
    assert after["node_numbers"] == before["node_numbers"]  # a rejection leaves no trace
    assert machine.node_number("one-too-many") is None


def test_a_reservation_raises_the_floor_and_never_lowers_it(
    machine: QueueStateMachine, log: Log
) -> None:
    assert run_one(machine, log, ReserveIds(T, 5_000)) == IdsReserved(5_000)
    assert run_one(machine, log, ReserveIds(T, 10)) == IdsReserved(5_000)
    assert machine.id_floor() == 5_000


def test_node_numbers_and_the_floor_survive_restart_and_snapshot(tmp_path: Path) -> None:
    log = Log()
    sm = open_machine(str(tmp_path / "a"))
    run(sm, log, AssignNodeNumber(T, "node-9"), AssignNodeNumber(T, "node-16"), ReserveIds(T, 77))
    sm.snapshot(str(tmp_path / "snap"))
    sm.close()
    sm = open_machine(str(tmp_path / "a"))
    fresh = open_machine(str(tmp_path / "b"))
    fresh.restore(str(tmp_path / "snap"))
    for replica in (sm, fresh):
        assert (replica.node_number("node-9"), replica.node_number("node-16")) == (0, 1)
        assert replica.id_floor() == 77
    assert sm.logical_dump() == fresh.logical_dump()
    for replica in (sm, fresh):  # the next number follows those assigned, on every replica alike
        next_log = Log()
        next_log.index = replica.last_applied()[0]
        assert run_one(replica, next_log, AssignNodeNumber(T, "node-3")).number == 2
    sm.close()
    fresh.close()


def test_a_restore_keeps_this_clusters_node_numbers(tmp_path: Path) -> None:
    # A backup from another cluster, where node-x has number 0.
    other, other_log = open_machine(str(tmp_path / "other")), Log()
    run(other, other_log, AssignNodeNumber(T, "node-x"))
    other.snapshot(str(tmp_path / "backup"))
    other.close()
    sm, log = open_machine(str(tmp_path / "live")), Log()
    run(sm, log, AssignNodeNumber(T, "node-a"), AssignNodeNumber(T, "node-b"))
    run(sm, log, RestoreState(T, (tmp_path / "backup").read_bytes()))
    assert (sm.node_number("node-a"), sm.node_number("node-b")) == (0, 1)
    assert sm.node_number("node-x") is None
    assert run_one(sm, log, AssignNodeNumber(T, "node-c")) == NodeNumberAssigned("node-c", 2)
    sm.close()


def test_the_commands_round_trip_and_refuse_what_is_out_of_range() -> None:
    for command in (AssignNodeNumber(T, "node-1"), ReserveIds(T, ID_MAX)):
        assert decode_command(encode_command(command)) == command
    with pytest.raises(ValueError):
        AssignNodeNumber(T, "x" * (NODE_ID_CHARS_MAX + 1))
    with pytest.raises(ValueError):
        AssignNodeNumber(T, "")
    with pytest.raises(ValueError):
        ReserveIds(T, ID_MAX + 1)
    header = encode_command(ReserveIds(T, 1))[:2]
    forged = header + msgspec.msgpack.encode({"ts_ms": T, "upto": ID_MAX + 1})
    with pytest.raises(CommandDecodeError):
        decode_command(forged)
