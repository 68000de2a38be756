"""The queue state is not synced at each apply (doq/state/unsynced.py): after a crash of the
machine it is discarded and rebuilt from the snapshot and the Raft log, with nothing lost and
nothing applied twice, even when the log was compacted behind the snapshot it restores."""

from __future__ import annotations

import os
from typing import Any

import trio

from doq.commands import QueueType
from doq.service import MessageInput, QueueService
from doq.state import unsynced
from doq.state.machine import QueueStateMachine
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.node import NodeConfig, RaftNode

from ..support import free_port

NODE = "node-0"
WAIT_S_MAX = 20


def open_state(data_dir: str, boot_file: str) -> QueueStateMachine:
    return QueueStateMachine(
        os.path.join(data_dir, "state"), apply_sync=False, boot_id_path=boot_file
    )


async def run_node(data_dir: str, state: QueueStateMachine, work: Any) -> Any:
    """A one-node cluster that snapshots every 20 entries and keeps 5 behind each snapshot;
    runs ``work(raft, service)`` once it leads and returns its value."""
    address = f"127.0.0.1:{free_port()}"
    config = NodeConfig(
        node_id=NODE,
        raft_address=address,
        data_dir=os.path.join(data_dir, "raft"),
        tick_ms=10,
        snapshot_interval_entries=20,
        snapshot_trailing_entries=5,
    )
    raft = RaftNode(config, state, bootstrap=ClusterConfig((Server(NODE, address),)))
    async with trio.open_nursery() as nursery:
        await nursery.start(raft.run)
        with trio.fail_after(WAIT_S_MAX):
            while not raft.is_leader:
                await trio.sleep(0.005)
            service = QueueService(raft, state, http_address="127.0.0.1:1")
            value = await work(raft, service)
        nursery.cancel_scope.cancel()
    return value


def queue_view(state: QueueStateMachine) -> dict[str, Any]:
    """Everything but the applied index (the restarted leader appends its own no-op)."""
    dump = state.logical_dump()
    del dump["applied"]
    return dump


def crash_the_machine(data_dir: str, boot_file: str) -> None:
    """What a crash of the machine may leave: the marker of the boot that wrote unsynced pages
    (a clean stop removed it), pages of the state's file never written (here: all of them), and
    a new boot."""
    state_dir = os.path.join(data_dir, "state")
    unsynced.mark_unsynced(state_dir, "the-boot-before-the-crash")
    data_file = os.path.join(state_dir, "data.mdb")
    size = os.path.getsize(data_file)
    with open(data_file, "r+b") as f:
        f.write(b"\0" * size)
    with open(boot_file, "w") as f:
        f.write("the-boot-after-the-crash")


async def test_a_machine_crash_rebuilds_the_state_from_snapshot_and_log(tmp_path):
    data_dir, boot_file = str(tmp_path / "node"), str(tmp_path / "boot_id")
    with open(boot_file, "w") as f:
        f.write("the-boot-before-the-crash")

    async def fill(raft: RaftNode, service: QueueService) -> int:
        await service.create_queue("q", QueueType.FAIR)
        for i in range(60):
            await service.enqueue("q", [MessageInput(priority=i % 3, content=f"m{i}")])
        for _ in range(15):
            await service.dequeue("q", ack=True)
        while raft.stats["snapshots_taken"] < 2:
            # A snapshot is written by a child process that takes a while to start: while one is
            # in flight, the points due meanwhile are skipped. More entries bring the next.
            await service.enqueue("q", [MessageInput(priority=9, content="more")])
            await service.dequeue("q", ack=True)
        return raft.applied_index

    state = open_state(data_dir, boot_file)
    try:
        applied_before = await run_node(data_dir, state, fill)
        before = queue_view(state)
    finally:
        state.close()
    assert len(before["messages"]) == 45, "60 enqueued, 15 taken and acknowledged"

    crash_the_machine(data_dir, boot_file)
    state = open_state(data_dir, boot_file)
    try:
        assert state.last_applied() == (0, 0), "an untrusted state is discarded at open"

        async def rebuilt(raft: RaftNode, service: QueueService) -> None:
            assert raft.storage is not None and raft.snapshots is not None
            _, log_start = raft.storage.initial_state()
            assert log_start.index > 0, "the log was compacted"
            assert raft.snapshots.find(log_start.index, log_start.term) is None, (
                "no snapshot file at the log's start: the rebuild uses a newer one"
            )
            while raft.applied_index <= applied_before:
                await trio.sleep(0.01)

        await run_node(data_dir, state, rebuilt)
        assert queue_view(state) == before
    finally:
        state.close()


async def test_a_process_crash_keeps_the_state(tmp_path):
    """Same boot: the kernel held every write of the process, so the state is kept as it is."""
    data_dir, boot_file = str(tmp_path / "node"), str(tmp_path / "boot_id")
    with open(boot_file, "w") as f:
        f.write("one-boot")
    state = open_state(data_dir, boot_file)
    marker = os.path.join(data_dir, "state", unsynced.MARKER_NAME)
    try:
        assert os.path.exists(marker), "marked before the first unsynced write"

        async def fill(raft: RaftNode, service: QueueService) -> None:
            await service.create_queue("q", QueueType.FAIR)
            await service.enqueue("q", [MessageInput(priority=1, content="kept")])

        await run_node(data_dir, state, fill)
        applied = state.last_applied()
    finally:
        state.close()
    assert not os.path.exists(marker), "a clean close syncs and drops the marker"
    unsynced.mark_unsynced(os.path.join(data_dir, "state"), "one-boot")  # as if killed
    state = open_state(data_dir, boot_file)
    try:
        assert state.last_applied() == applied
    finally:
        state.close()
