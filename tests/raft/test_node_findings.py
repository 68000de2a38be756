"""Regression tests for the driver's findings of issue 10 (docs/raft.md), on real Trio nodes over
ZeroMQ on 127.0.0.1 with LMDB storage. Each failed before its fix."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import trio

from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.ready import ProposalDropped
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, Server, SnapshotMeta
from raft_zmq.node import NodeStopped
from raft_zmq.snapshots import SnapshotStore
from raft_zmq.statemachine import StorageFull
from raft_zmq.storage import RaftStorage

from .kvsm import KVStateMachine, set_command
from .test_node_cluster import (
    DEADLINE_S,
    Member,
    free_port,
    propose_all,
    three_members,
    wait_for_leader,
)


async def poll(condition: Any, interval_s: float = 0.01) -> None:
    """Wait until ``condition()`` holds (the caller's deadline bounds it)."""
    while not condition():
        await trio.sleep(interval_s)


class SlowSnapshotKV(KVStateMachine):
    """A snapshot that is slow to finish (a slow fsync): it has read its index and written its
    file, then waits until the test lets it return."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.started = threading.Event()
        self.release = threading.Event()

    def snapshot(self, path: str) -> tuple[int, int]:
        result = super().snapshot(path)
        self.started.set()
        self.release.wait(DEADLINE_S)
        return result


async def test_a_snapshot_install_racing_a_slow_local_snapshot_does_not_kill_the_follower(
    tmp_path,
):
    # Finding 1: the local snapshot's metadata was taken outside the loop after the thread
    # returned; an install meanwhile had compacted its index away, snapshot_meta asserted, and
    # the exception ended the node's nursery (the whole process).
    members, config = three_members(
        str(tmp_path),
        snapshot_interval_entries=100,
        snapshot_trailing_entries=20,
        election_timeout_ticks=50,  # no election on a loaded machine: the leader stays put
    )
    with trio.fail_after(DEADLINE_S * 2):
        async with trio.open_nursery() as nursery:
            for m in members:
                if m.id == "n2":
                    m.sm_factory = SlowSnapshotKV
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            if leader.id == "n2":
                await leader.node.transfer_leadership("n0")
                leader = await wait_for_leader([members[0]])
            slow = members[2]
            assert isinstance(slow.sm, SlowSnapshotKV)
            await propose_all(leader.node, [set_command(f"a{i}", "v") for i in range(120)])
            while not slow.sm.started.is_set():  # until the follower's snapshot is in flight
                await leader.node.propose(set_command("more", "v"))
                await trio.sleep(0.01)
            others = [m.id for m in members if m is not slow]
            slow.node.transport.faults.partition(others, inbound=True, outbound=True)
            await propose_all(leader.node, [set_command(f"b{i}", "v") for i in range(400)])
            await poll(lambda: leader.node.core.log.first_index() > 200)  # past the follower
            slow.node.transport.faults.heal()
            try:
                await poll(lambda: slow.node.stats["snapshots_installed"] >= 1)
            finally:
                slow.sm.release.set()  # the old snapshot's thread returns now, superseded
            await poll(lambda: slow.node.stats["snapshots_superseded"] == 1)
            await leader.node.propose(set_command("after", "race"))
            # The follower's state machine is read only once it has caught up: a second install
            # may still be restoring it until then.
            target = leader.node.applied_index
            await poll(lambda: slow.node.applied_index >= target)
            assert slow.sm.get("after") == "race"
            assert slow.sm.items() == leader.sm.items()
            nursery.cancel_scope.cancel()


async def test_callers_of_the_loop_fail_with_node_stopped_once_the_node_stopped(tmp_path):
    # Finding 7: _in_loop queued the call and waited for ever on a node that had stopped.
    member = Member(str(tmp_path), "a", f"127.0.0.1:{free_port()}")
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, ClusterConfig((Server("a", member.address),)))
            await wait_for_leader([member])
            node = member.node
            member.kill()
            await poll(lambda: node._stopped)
            try:
                await node.transfer_leadership("a")
                raise AssertionError("a stopped node must refuse work")
            except NodeStopped:
                pass
            nursery.cancel_scope.cancel()


class FullDiskKV(KVStateMachine):
    """``apply`` raises StorageFull ``failures`` times (nothing applied), then succeeds."""

    failures = 0

    def apply(self, entries: Sequence[Entry]) -> list[Any]:
        if any(e.kind == EntryKind.NORMAL for e in entries) and self.failures > 0:
            self.failures -= 1
            raise StorageFull("no room (test)")
        return super().apply(entries)


async def test_a_full_store_blocks_the_node_then_it_resumes_by_itself(tmp_path, monkeypatch):
    # Finding 3 (the driver's half): StorageFull from apply crashed the node, and every replica
    # would crash again at the same entry at every restart.
    monkeypatch.setattr("raft_zmq.node.STORAGE_FULL_RETRY_INTERVAL_MS", 20)
    member = Member(str(tmp_path), "a", f"127.0.0.1:{free_port()}")
    member.sm_factory = FullDiskKV
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, ClusterConfig((Server("a", member.address),)))
            await wait_for_leader([member])
            node, sm = member.node, member.sm
            assert isinstance(sm, FullDiskKV)
            sm.failures = 3
            results: list[Any] = []

            async def write() -> None:
                results.append(await node.propose(set_command("k", "v")))

            nursery.start_soon(write)
            await poll(lambda: node.storage_blocked)
            assert node.status()["storage_blocked"] is True
            await poll(lambda: not node.storage_blocked)  # room came back: it resumed alone
            await poll(lambda: results == [None])
            assert node.stats["storage_full_retries"] == 3 and sm.get("k") == "v"
            assert await node.propose(set_command("k", "w")) == "v"
            nursery.cancel_scope.cancel()


async def test_a_full_log_blocks_the_node_refuses_new_proposals_then_resumes(tmp_path, monkeypatch):
    # Finding 3: StorageFull from the Raft log's save is retried the same way; proposals made
    # meanwhile are refused (ProposalDropped: nothing appended, safe to retry).
    monkeypatch.setattr("raft_zmq.node.STORAGE_FULL_RETRY_INTERVAL_MS", 20)
    member = Member(str(tmp_path), "a", f"127.0.0.1:{free_port()}")
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, ClusterConfig((Server("a", member.address),)))
            await wait_for_leader([member])
            node = member.node
            await node.read_barrier()  # the leader's no-op is in
            save, failures = node.storage.save, [2]
            release = trio.Event()

            def full_save(hard_state: Any, entries: Any) -> None:
                if entries and (failures[0] > 0 or not release.is_set()):
                    failures[0] -= 1
                    raise StorageFull("no room (test)")
                save(hard_state, entries)

            monkeypatch.setattr(node.storage, "save", full_save)
            results: list[Any] = []

            async def write() -> None:
                results.append(await node.propose(set_command("k", "v")))

            nursery.start_soon(write)
            await poll(lambda: node.storage_blocked)
            try:
                await node.propose(set_command("k", "refused"))
                raise AssertionError("a node blocked on storage must refuse proposals")
            except ProposalDropped:
                pass
            release.set()
            await poll(lambda: results == [None])
            assert not node.storage_blocked and member.sm.get("k") == "v"
            nursery.cancel_scope.cancel()


async def test_a_caller_waiting_on_a_loop_blocked_by_a_full_store_fails_when_the_node_stops(
    tmp_path, monkeypatch
):
    # Finding 7: callers of _in_loop whose call is still queued when the node stops get
    # NodeStopped (here the loop is held by a store that stays full).
    monkeypatch.setattr("raft_zmq.node.STORAGE_FULL_RETRY_INTERVAL_MS", 20)
    member = Member(str(tmp_path), "a", f"127.0.0.1:{free_port()}")
    member.sm_factory = FullDiskKV
    outcome: list[str] = []
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, ClusterConfig((Server("a", member.address),)))
            await wait_for_leader([member])
            node = member.node
            member.sm.failures = 10**9

            async def write() -> None:
                try:
                    await node.propose(set_command("k", "v"))
                except NodeStopped:
                    outcome.append("write stopped")

            async def transfer() -> None:
                try:
                    await node.transfer_leadership("a")
                except NodeStopped:
                    outcome.append("transfer stopped")

            nursery.start_soon(write)
            await poll(lambda: node.storage_blocked)
            nursery.start_soon(transfer)
            await poll(lambda: node._loop_waiters)
            member.kill()
            await poll(lambda: len(outcome) == 2)
            assert sorted(outcome) == ["transfer stopped", "write stopped"]
            nursery.cancel_scope.cancel()


def _kv_snapshot(root: str, name: str, count: int, store: SnapshotStore, meta: SnapshotMeta):
    """A snapshot file of a KV state with ``count`` entries applied, finalized as ``meta``."""
    sm = KVStateMachine(os.path.join(root, name))
    entries = [
        Entry(i, meta.term, EntryKind.NORMAL, set_command(f"k{i}", name))
        for i in range(1, count + 1)
    ]
    sm.apply(entries)
    tmp = store.new_temp_path()
    sm.snapshot(tmp)
    sm.close()
    return store.finalize(tmp, meta)


async def test_startup_restores_the_snapshot_the_log_names_not_the_newest_file(tmp_path):
    # Finding 5: a crash after the log installed snapshot 50 and before the state machine was
    # restored, with a newer snapshot (80) received and finalized but never installed: start
    # restored the newest file, applied ran past the log, and the node refused to start.
    root = str(tmp_path)
    member = Member(root, "a", f"127.0.0.1:{free_port()}")
    config = ClusterConfig((Server("a", member.address),))
    store = SnapshotStore(os.path.join(member.config.data_dir, "snapshots"))
    installed = _kv_snapshot(root, "s50", 50, store, SnapshotMeta(50, 1, config))
    _kv_snapshot(root, "s80", 80, store, SnapshotMeta(80, 2, config))
    storage = RaftStorage.open(os.path.join(member.config.data_dir, "log"), sync=False)
    storage.install_snapshot(installed.meta)
    storage.close()
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, None)
            await wait_for_leader([member])
            assert member.sm.last_applied()[0] >= 50 and member.sm.get("k50") == "s50"
            assert member.sm.get("k51") is None
            assert member.node.core.latest_snapshot == installed.meta
            await member.node.propose(set_command("after", "start"))
            nursery.cancel_scope.cancel()


async def test_startup_registers_the_newest_snapshot_at_or_below_applied(tmp_path):
    # Finding 5: a newer staged file (beyond applied) hid the usable one, so the node had no
    # snapshot to stream and a leader needing one would assert.
    root = str(tmp_path)
    member = Member(root, "a", f"127.0.0.1:{free_port()}")
    config = ClusterConfig((Server("a", member.address),))
    storage = RaftStorage.open(os.path.join(member.config.data_dir, "log"), sync=False)
    entries = [Entry(1, 1, EntryKind.CONFIG, encode_config(config))]
    entries += [Entry(i, 1, EntryKind.NORMAL, set_command(f"k{i}", "s5")) for i in range(2, 11)]
    storage.save(None, entries)
    storage.close()
    store = SnapshotStore(os.path.join(member.config.data_dir, "snapshots"))
    usable = _kv_snapshot(root, "s5", 5, store, SnapshotMeta(5, 1, config))
    _kv_snapshot(root, "s80", 80, store, SnapshotMeta(80, 2, config))
    kv = KVStateMachine(os.path.join(member.config.data_dir, "kv"))
    kv.apply(entries[:8])
    kv.close()
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await member.start(nursery, None)
            assert member.node.core.latest_snapshot == usable.meta
            nursery.cancel_scope.cancel()
