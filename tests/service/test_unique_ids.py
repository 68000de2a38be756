"""Message IDs unique by construction (issue 10, finding 8): node numbers assigned through the log
(two node IDs whose crc32 collides used to share one), and IDs handed out by POST /API/v1/ids
covered by the replicated floor, so that a later leader, or this one restarted with its clock
stepped back, never hands them out again."""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import AsyncIterator

import pytest
import trio

from doq.api.errors import problem_for_service_error
from doq.commands import AssignNodeNumber, QueueType, encode_command
from doq.ids import ID_NODE_MAX, ID_SEQUENCE_BITS
from doq.service import ID_RESERVE_AHEAD_MS, MessageInput, QueueService, RejectedError
from doq.state.machine import QueueStateMachine
from doq.state.results import RejectCode
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.node import NodeConfig, RaftNode

from ..support import free_port, single_node_service

T = 1_800_000_000_000
STARTUP_TIMEOUT_S = 20


def node_field(message_id: int) -> int:
    return (message_id >> ID_SEQUENCE_BITS) & ID_NODE_MAX


async def test_ids_then_a_restart_with_the_clock_stepped_back_are_not_repeated(tmp_path):
    async with single_node_service(str(tmp_path), clock_ms=lambda: T) as svc:
        first = await svc.generate_ids(100)
    async with single_node_service(str(tmp_path), clock_ms=lambda: T - 5_000) as svc:
        second = await svc.generate_ids(100)
    assert min(second) > max(first)


async def test_ids_cost_a_raft_round_per_reserved_block_not_per_call(tmp_path):
    now = [T]
    async with single_node_service(str(tmp_path), clock_ms=lambda: now[0]) as svc:
        await svc.create_queue("q", QueueType.DELAYED)
        handed = await svc.generate_ids(10)
        assert svc.state.id_floor() >= max(handed)
        committed = svc.raft.core.log.committed
        for _ in range(20):
            now[0] += 100
            handed += await svc.generate_ids(1000)
        assert svc.raft.core.log.committed == committed  # covered by the first reservation
        assert svc.state.id_floor() >= max(handed)
        now[0] += ID_RESERVE_AHEAD_MS
        handed += await svc.generate_ids(10)
        assert svc.raft.core.log.committed == committed + 1  # one more block reserved
        assert svc.state.id_floor() >= max(handed)
        assert handed == sorted(set(handed))


@contextlib.asynccontextmanager
async def cluster(data_dir: str, ids: list[str], clock_ms) -> AsyncIterator[list[QueueService]]:
    """Services on a real Raft cluster bootstrapped together, all with the same clock."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in ids]
    config = ClusterConfig(tuple(Server(i, a) for i, a in zip(ids, addresses)))
    states = [QueueStateMachine(os.path.join(data_dir, i, "state")) for i in ids]
    try:
        async with trio.open_nursery() as nursery:
            services = []
            for node_id, address, state in zip(ids, addresses, states):
                raft_dir = os.path.join(data_dir, node_id, "raft")
                node_config = NodeConfig(node_id, address, data_dir=raft_dir, tick_ms=10)
                raft = RaftNode(node_config, state, bootstrap=config)
                await nursery.start(raft.run)
                services.append(QueueService(raft, state, http_address="", clock_ms=clock_ms))
            for service in services:  # every clock agrees: what doq/peerclock.py would measure
                for peer in ids:
                    now_ms = clock_ms()
                    if peer != service.raft.node_id:
                        service.peer_clocks.record(
                            peer, now_ms, now_ms, now_ms, service.monotonic_ms()
                        )
            yield services
            nursery.cancel_scope.cancel()
    finally:
        for state in states:
            state.close()


async def lead(services: list[QueueService], node_id: str) -> QueueService:
    """Make ``node_id`` the leader (by transfer) and return its service."""
    target = next(s for s in services if s.raft.node_id == node_id)
    with trio.fail_after(STARTUP_TIMEOUT_S):
        while not target.raft.is_leader:
            leader = next((s for s in services if s.raft.is_leader), None)
            if leader is not None:
                await leader.raft.transfer_leadership(node_id)
            await trio.sleep(0.05)
    return target


async def test_leaders_whose_node_ids_collide_under_crc32_never_repeat_an_id(tmp_path):
    assert zlib.crc32(b"node-9") & ID_NODE_MAX == zlib.crc32(b"node-16") & ID_NODE_MAX
    async with cluster(str(tmp_path), ["node-9", "node-16", "node-2"], lambda: T) as services:
        first = await (await lead(services, "node-9")).generate_ids(100)
        second = await (await lead(services, "node-16")).generate_ids(100)
        numbers = {s.raft.node_id: s.state.node_number(s.raft.node_id) for s in services}
    assert not set(first) & set(second)
    assert min(second) > max(first)  # the new leader starts above the reserved floor
    assert numbers["node-9"] != numbers["node-16"]
    assert {node_field(i) for i in first} == {numbers["node-9"]}
    assert {node_field(i) for i in second} == {numbers["node-16"]}


async def test_a_node_left_without_a_number_refuses_ids_clearly_and_serves_the_rest(
    tmp_path, caplog
):
    """All 1024 node numbers taken by others: this node hands out no IDs (a clear refusal, logged),
    never an assertion, and still serves what needs none."""
    async with single_node_service(str(tmp_path), clock_ms=lambda: T) as svc:
        async with trio.open_nursery() as nursery:  # every number taken before our first write
            for n in range(ID_NODE_MAX + 1):
                command = encode_command(AssignNodeNumber(T, f"other-{n}"))
                nursery.start_soon(svc.raft.propose, command)
        await svc.create_queue("q", QueueType.DELAYED)  # needs no ID
        with pytest.raises(RejectedError) as refused:
            await svc.enqueue("q", [MessageInput(priority=1, content="x")])
        assert refused.value.code is RejectCode.CONFLICT
        assert "node number" in refused.value.detail
        assert problem_for_service_error(refused.value).status == 409
        with pytest.raises(RejectedError):
            await svc.generate_ids(1)
        chosen = await svc.enqueue("q", [MessageInput(priority=1, content="y", id=7)])
        assert chosen.messages[0].id == 7  # an ID the client chose needs no number
        assert svc.state.node_number(svc.raft.node_id) is None
    assert any("refuses to hand out message IDs" in r.getMessage() for r in caplog.records)
