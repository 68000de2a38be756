"""A doq node writes its snapshots in a child process (doq/state/snapshot_process.py,
raft_zmq/snapshot_writer.py), not in a worker thread of its loop, and a child that fails leaves
no snapshot behind: no file registered, no temp file, the log not compacted, the node serving."""

from __future__ import annotations

import os
import sys

import trio

from doq.commands import QueueType
from doq.service import MessageInput, QueueService
from doq.state.machine import QueueStateMachine
from raft_zmq.node import RaftNode

from .test_state_durability import open_state, run_node


class NoThreadSnapshot(QueueStateMachine):
    """The in-process writer refuses: a snapshot can only come from the child."""

    def snapshot(self, path: str) -> tuple[int, int]:
        raise AssertionError("snapshot written in the node's process")


class FailingChild(QueueStateMachine):
    commands = 0

    def snapshot_command(self, path: str) -> list[str]:
        self.commands += 1
        return [sys.executable, "-c", "import sys; sys.stderr.write('no'); sys.exit(1)", path]


async def enqueue(service: QueueService, count: int) -> None:
    await service.create_queue("q", QueueType.FAIR)
    for i in range(count):
        await service.enqueue("q", [MessageInput(priority=0, content=f"m{i}")])


async def test_the_node_snapshots_through_the_child(tmp_path):
    data_dir, boot_file = str(tmp_path / "node"), str(tmp_path / "boot_id")
    state = NoThreadSnapshot(os.path.join(data_dir, "state"), boot_id_path=boot_file)

    async def work(raft: RaftNode, service: QueueService) -> None:
        await enqueue(service, 50)
        while raft.stats["snapshots_taken"] < 1:
            await trio.sleep(0.01)

    try:
        await run_node(data_dir, state, work)
    finally:
        state.close()


async def test_a_failing_child_leaves_no_snapshot_and_the_node_goes_on(tmp_path):
    data_dir, boot_file = str(tmp_path / "node"), str(tmp_path / "boot_id")
    state = FailingChild(os.path.join(data_dir, "state"), boot_id_path=boot_file)
    snapshots_dir = os.path.join(data_dir, "raft", "snapshots")

    async def work(raft: RaftNode, service: QueueService) -> None:
        await enqueue(service, 30)
        while state.commands < 2:  # one failed, and the next was tried
            await service.enqueue("q", [MessageInput(priority=0, content="more")])
        assert raft.stats["snapshots_taken"] == 0
        assert raft.storage is not None
        _, log_start = raft.storage.initial_state()
        assert log_start.index == 0, "nothing compacted behind a snapshot that failed"
        assert await service.enqueue("q", [MessageInput(priority=0, content="still")])

    try:
        await run_node(data_dir, state, work)
    finally:
        state.close()
    leftovers = os.listdir(snapshots_dir) if os.path.isdir(snapshots_dir) else []
    assert leftovers == []


def test_an_opened_state_offers_the_child(tmp_path):
    state = open_state(str(tmp_path / "node"), str(tmp_path / "boot_id"))
    try:
        argv = state.snapshot_command(str(tmp_path / "snap"))
    finally:
        state.close()
    assert argv[:3] == [sys.executable, "-m", "doq.state.snapshot_process"]
