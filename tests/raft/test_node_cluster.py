"""Real Trio nodes over ZeroMQ on 127.0.0.1 with LMDB storage and a key-value state machine:
elections, replication, leader loss, restarts, snapshots and membership, end to end."""

from __future__ import annotations

import os
import random
import socket

import trio

from raft_zmq.core.ready import CoreOptions, NotLeader, Role
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.node import LeadershipLost, NodeConfig, NodeStopped, RaftNode
from raft_zmq.storage import RaftStorage

from .kvsm import KVStateMachine, set_command

DEADLINE_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Member:
    """One node: its config, state machine and the cancel scope that kills its task."""

    def __init__(self, root: str, node_id: str, address: str, **overrides) -> None:
        self.id = node_id
        self.address = address
        base = dict(
            node_id=node_id,
            raft_address=address,
            data_dir=os.path.join(root, node_id),
            tick_ms=10,
            election_timeout_ticks=15,
            heartbeat_interval_ticks=2,
            core=CoreOptions(),
        )
        base.update(overrides)
        self.config = NodeConfig(**base)
        self.node: RaftNode | None = None
        self.sm: KVStateMachine | None = None
        self.sm_factory: type[KVStateMachine] = KVStateMachine
        self.scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery, bootstrap: ClusterConfig | None) -> RaftNode:
        self.sm = self.sm_factory(os.path.join(self.config.data_dir, "kv"))
        self.node = RaftNode(self.config, self.sm, bootstrap=bootstrap, rng=random.Random(self.id))
        started = trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope() as scope:
                self.scope = scope
                task_status.started()
                try:
                    await self.node.run()
                finally:
                    self.sm.close()
                    started.set()

        await nursery.start(run)
        return self.node

    def kill(self) -> None:
        assert self.scope is not None
        self.scope.cancel()


def three_members(root: str, **overrides) -> tuple[list[Member], ClusterConfig]:
    members = [Member(root, f"n{i}", f"127.0.0.1:{free_port()}", **overrides) for i in range(3)]
    config = ClusterConfig(tuple(Server(m.id, m.address) for m in members))
    return members, config


async def wait_for_leader(members: list[Member]) -> Member:
    while True:
        leaders = [m for m in members if m.node and m.node.core and m.node.is_leader]
        if len(leaders) == 1:
            return leaders[0]
        await trio.sleep(0.01)


async def propose_all(node: RaftNode, commands: list[bytes], concurrency: int = 64) -> list:
    results: list = [None] * len(commands)

    async def worker(start: int) -> None:
        for i in range(start, len(commands), concurrency):
            results[i] = await node.propose(commands[i])

    async with trio.open_nursery() as nursery:
        for w in range(concurrency):
            nursery.start_soon(worker, w)
    return results


def log_of(member: Member) -> list[tuple[int, int, bytes]]:
    storage = RaftStorage.open(os.path.join(member.config.data_dir, "log"))
    try:
        entries = storage.entries(storage.first_index(), storage.last_index() + 1, 1 << 40)
        return [(e.index, e.term, e.data) for e in entries]
    finally:
        storage.close()


async def test_three_nodes_replicate_10000_proposals_and_survive_losing_the_leader(tmp_path):
    members, config = three_members(str(tmp_path))
    with trio.fail_after(DEADLINE_S * 4):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            commands = [set_command(f"k{i}", f"v{i}") for i in range(10_000)]
            results = await propose_all(leader.node, commands)
            assert results == [None] * 10_000  # every key was new
            leader.kill()
            survivors = [m for m in members if m is not leader]
            new_leader = await wait_for_leader(survivors)
            more = [set_command(f"k{i}", f"w{i}") for i in range(100)]
            assert await propose_all(new_leader.node, more) == [f"v{i}" for i in range(100)]
            for m in survivors:
                await m.node.wait_applied(new_leader.node.core.log.committed)
            items = [m.sm.items() for m in survivors]
            assert items[0] == items[1] and len(items[0]) == 10_000
            nursery.cancel_scope.cancel()
    logs = [log_of(m) for m in members if m is not leader]
    assert logs[0] == logs[1]
    # Every entry the killed leader committed (the 10,000 proposals and what came before them)
    # is in the survivors' log, at the same index and term.
    old = log_of(leader)
    assert {e[:2] for e in old if e[0] <= 10_002} <= {e[:2] for e in logs[0]}


async def test_a_follower_forwards_nothing_and_names_the_leader(tmp_path):
    members, config = three_members(str(tmp_path))
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            follower = next(m for m in members if m is not leader)
            await follower.node.wait_leader()
            try:
                await follower.node.propose(set_command("a", "b"))
                raise AssertionError("a follower must refuse proposals")
            except NotLeader as exc:
                assert exc.leader == leader.id
            nursery.cancel_scope.cancel()


async def test_read_barrier_sees_every_acknowledged_write(tmp_path):
    members, config = three_members(str(tmp_path))
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            for i in range(20):
                await leader.node.propose(set_command("x", str(i)))
                index = await leader.node.read_barrier()
                assert index >= leader.node.core.log.committed - 1
                assert leader.sm.get("x") == str(i)
            nursery.cancel_scope.cancel()


async def test_a_restarted_node_catches_up_through_a_snapshot(tmp_path):
    members, config = three_members(
        str(tmp_path), snapshot_interval_entries=200, snapshot_trailing_entries=50
    )
    with trio.fail_after(DEADLINE_S * 2):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            laggard = next(m for m in members if m is not leader)
            laggard.kill()
            await trio.sleep(0.05)
            await propose_all(leader.node, [set_command(f"s{i}", "v") for i in range(1500)])
            assert leader.node.stats["snapshots_taken"] >= 1
            assert leader.node.core.log.first_index() > 2  # the log was compacted
            restarted = Member(
                str(tmp_path),
                laggard.id,
                laggard.address,
                snapshot_interval_entries=200,
                snapshot_trailing_entries=50,
            )
            members[members.index(laggard)] = restarted
            await restarted.start(nursery, config)
            await leader.node.propose(set_command("after", "restart"))
            while restarted.node.core.log.applied < leader.node.core.log.committed:
                await trio.sleep(0.01)
            assert restarted.node.stats["snapshots_installed"] >= 1
            assert restarted.sm.get("after") == "restart"
            assert restarted.sm.items() == leader.sm.items()
            nursery.cancel_scope.cancel()


async def test_a_cluster_grows_from_one_node_through_membership_changes(tmp_path):
    root = str(tmp_path)
    first = Member(root, "a", f"127.0.0.1:{free_port()}")
    others = [Member(root, n, f"127.0.0.1:{free_port()}") for n in ("b", "c")]
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await first.start(nursery, ClusterConfig((Server("a", first.address),)))
            await wait_for_leader([first])
            await first.node.propose(set_command("before", "growth"))
            for m in others:
                await m.start(nursery, None)  # empty: waits to be added
                await first.node.add_voter(m.id, m.address)
            await first.node.propose(set_command("after", "growth"))
            for m in others:
                while m.sm.get("after") != "growth":
                    await trio.sleep(0.01)
                assert m.sm.get("before") == "growth"
            assert first.node.core.config.voters == {"a", "b", "c"}
            # Now the first node can go: the other two still form a majority of three.
            await first.node.remove_server("a")
            new_leader = await wait_for_leader(others)
            await new_leader.node.propose(set_command("without", "a"))
            nursery.cancel_scope.cancel()


async def test_a_stopped_node_fails_its_waiters_and_closes_cleanly(tmp_path):
    members, config = three_members(str(tmp_path))
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for m in members[:1]:
                await m.start(nursery, config)
            node = members[0].node
            while node.core.role is not Role.PRE_CANDIDATE:  # until it has tried an election
                await trio.sleep(0.005)
            assert node.core.role is not Role.LEADER and node.leader_id is None
            members[0].kill()
            await trio.sleep(0)
            nursery.cancel_scope.cancel()
    # Storage was closed: it opens again at once (LMDB would refuse a second writer otherwise).
    assert log_of(members[0])[0][0] == 1
    try:
        await node.propose(b"x")
        raise AssertionError("a stopped node must refuse work")
    except NodeStopped:
        pass


async def test_proposals_fail_with_leadership_lost_when_the_leader_is_deposed(tmp_path):
    members, config = three_members(str(tmp_path))
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members)
            others = [m for m in members if m is not leader]
            for m in others:
                m.kill()
            outcome: list[str] = []

            async def doomed() -> None:
                try:
                    await leader.node.propose(set_command("lonely", "x"))
                    outcome.append("applied")
                except (LeadershipLost, NotLeader):
                    outcome.append("lost")

            nursery.start_soon(doomed)
            while not outcome:  # check-quorum makes the lonely leader step down
                await trio.sleep(0.01)
            assert outcome == ["lost"]
            nursery.cancel_scope.cancel()
