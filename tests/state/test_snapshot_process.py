"""The snapshot written by a child process (doq/state/snapshot_process.py) is the snapshot the
state machine writes in process: the same bytes, at the (index, term) it reports, read in one
transaction while the node goes on applying; a child that cannot write one fails loudly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import lmdb

from doq.commands import CreateQueue, Dequeue, Enqueue, NewMessage, QueueType, Strategy
from doq.state import snapshot, snapshot_process
from doq.state.machine import QueueStateMachine
from doq.state.snapshot import verify
from doq.state.snapshot_process import command
from raft_zmq.snapshot_writer import parse_index_term

from .helpers import Log, open_machine, run

T = 1_750_000_000_000
CHILD_TIMEOUT_S = 60  # a bound for a broken child, not a wait


def fill(sm: QueueStateMachine, log: Log, messages: int) -> None:
    run(
        sm,
        log,
        CreateQueue(T, "fair", QueueType.FAIR, 30, Strategy.ROUND_ROBIN),
        CreateQueue(T, "delayed", QueueType.DELAYED, 30),
    )
    for start in range(0, messages, 500):
        batch = tuple(
            NewMessage(start + i + 1, i % 7, f"body {start + i}", f"g{i % 5}") for i in range(500)
        )
        run(sm, log, Enqueue(T, "fair", batch), Enqueue(T + 1, "delayed", batch))
    run(sm, log, Dequeue(T + 2, "fair", count=40), Dequeue(T + 2, "delayed", count=40))


def run_child(sm: QueueStateMachine, out: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        sm.snapshot_command(out), capture_output=True, timeout=CHILD_TIMEOUT_S, check=False
    )


def test_the_child_writes_the_same_bytes_at_the_same_index_as_the_state_machine(
    tmp_path: Path,
) -> None:
    sm, log = open_machine(str(tmp_path / "state")), Log()
    try:
        fill(sm, log, 3000)
        expected = sm.snapshot(str(tmp_path / "in-process"))
        done = run_child(sm, str(tmp_path / "child"))
        assert done.returncode == 0, done.stderr
        assert parse_index_term(done.stdout) == expected == sm.last_applied() == (log.index, 1)
        in_process = (tmp_path / "in-process").read_bytes()
        assert (tmp_path / "child").read_bytes() == in_process
    finally:
        sm.close()


def test_the_child_reads_one_point_while_applies_go_on(tmp_path: Path) -> None:
    # Whatever index the child began at, its file is byte for byte the snapshot of that index.
    sm, log = open_machine(str(tmp_path / "state")), Log()
    try:
        fill(sm, log, 2000)
        child = subprocess.Popen(
            sm.snapshot_command(str(tmp_path / "child")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        by_index = {}
        try:
            for i in range(20):
                path = tmp_path / f"at-{log.index}"
                by_index[sm.snapshot(str(path))] = path
                run(sm, log, Enqueue(T + 3, "fair", (NewMessage(10_000 + i, 0, "late", "g"),)))
            by_index[sm.snapshot(str(tmp_path / "last"))] = tmp_path / "last"
            stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, stderr
        index_term = parse_index_term(stdout)
        assert index_term in by_index
        assert (tmp_path / "child").read_bytes() == by_index[index_term].read_bytes()
    finally:
        sm.close()


def test_a_child_snapshot_restores_into_a_fresh_state(tmp_path: Path) -> None:
    sm, log = open_machine(str(tmp_path / "state")), Log()
    fresh = open_machine(str(tmp_path / "fresh"))
    try:
        fill(sm, log, 1000)
        assert run_child(sm, str(tmp_path / "child")).returncode == 0
        with open(tmp_path / "child", "rb") as source:
            assert verify(source) == sm.last_applied()
        assert fresh.restore(str(tmp_path / "child")) == sm.last_applied()
        assert fresh.logical_dump() == sm.logical_dump()
    finally:
        sm.close()
        fresh.close()


def test_a_child_without_a_state_fails_and_writes_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        command(str(tmp_path / "nowhere"), str(tmp_path / "snap")),
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode != 0 and b"no state environment" in done.stderr
    assert not os.path.exists(tmp_path / "snap")


def test_a_snapshot_file_is_synced_as_it_is_written(tmp_path: Path, monkeypatch) -> None:
    # A whole snapshot's dirty pages flushed by one fsync at the end made the node's own log
    # fsync wait behind them (docs/benchmarks.md, "Snapshot stall").
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def counting(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fdatasync(fd)

    monkeypatch.setattr(snapshot, "SYNC_EVERY_BYTES", 64 << 10, raising=False)
    monkeypatch.setattr(snapshot, "WRITE_BUFFER_BYTES", 16 << 10)
    monkeypatch.setattr(os, "fdatasync", counting)
    sm, log = open_machine(str(tmp_path / "state")), Log()
    try:
        fill(sm, log, 2000)
        sm.snapshot(str(tmp_path / "snap"))
    finally:
        sm.close()
    size = (tmp_path / "snap").stat().st_size
    assert len(synced) >= size // (64 << 10) - 1 > 2
    assert synced == sorted(synced) and synced[-1] < size


def test_a_map_grown_under_the_child_is_adopted_and_the_snapshot_begins_again(
    tmp_path: Path, monkeypatch
) -> None:
    # The node may grow the map between the child's open and its read transaction; LMDB then
    # refuses the transaction (MapResizedError) until the child takes the new size.
    sm, log = open_machine(str(tmp_path / "state")), Log()
    fill(sm, log, 500)
    expected = sm.snapshot(str(tmp_path / "expected"))
    sm.close()  # the child's work runs in this process here: one opener of the environment

    class GrownOnce:
        def __init__(self, env: Any) -> None:
            self.env, self.refused, self.adopted = env, False, False

        def begin(self) -> Any:
            if not self.refused:
                self.refused = True
                raise lmdb.MapResizedError("grown")
            return self.env.begin()

        def set_mapsize(self, size: int) -> None:
            self.adopted = size == 0
            self.env.set_mapsize(size)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.env, name)

    opened: list[GrownOnce] = []
    real_open = snapshot_process.open_readonly
    monkeypatch.setattr(
        snapshot_process,
        "open_readonly",
        lambda path: opened.append(GrownOnce(real_open(path))) or opened[-1],
    )
    assert snapshot_process.write_from(str(tmp_path / "state"), str(tmp_path / "child")) == expected
    assert opened[0].refused and opened[0].adopted
    assert (tmp_path / "child").read_bytes() == (tmp_path / "expected").read_bytes()
