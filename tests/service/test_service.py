"""The queue service on a real one-node cluster: the leader's path of each command."""

from __future__ import annotations

import pytest
import trio

from doq.commands import QueueType, Strategy
from doq.ids import id_unix_ms
from doq.service import MessageInput, RejectedError
from doq.state.results import Dequeued, Enqueued, QueueCreated, RejectCode

from ..support import single_node_service


async def test_enqueue_dequeue_ack_through_the_log(tmp_path):
    async with single_node_service(str(tmp_path)) as svc:
        created = await svc.create_queue("jobs", QueueType.DELAYED)
        assert isinstance(created, QueueCreated) and created.settings.ack_timeout_s == 1800
        enq = await svc.enqueue("jobs", [MessageInput(priority=5, content="a")])
        assert isinstance(enq, Enqueued)
        message_id = enq.messages[0].id
        deq = await svc.dequeue("jobs", ack=False)
        assert isinstance(deq, Dequeued) and deq.messages[0].id == message_id
        await svc.ack("jobs", message_id)
        info = await svc.queue_info("jobs")
        assert (info.ready, info.unacked, info.total) == (0, 0, 0)


async def test_generated_ids_are_unique_increasing_and_carry_the_leaders_time(tmp_path):
    now_ms = 1_800_000_000_000
    async with single_node_service(str(tmp_path), clock_ms=lambda: now_ms) as svc:
        await svc.create_queue("q", QueueType.FAIR, strategy=Strategy.ROUND_ROBIN)
        enq = await svc.enqueue("q", [MessageInput(priority=0, content=str(i)) for i in range(50)])
        ids = [m.id for m in enq.messages]
        assert ids == sorted(ids) and len(set(ids)) == 50
        assert {id_unix_ms(i) for i in ids} == {now_ms}
        more = await svc.generate_ids(10)
        assert min(more) > max(ids)


async def test_rejections_are_errors_with_codes(tmp_path):
    async with single_node_service(str(tmp_path)) as svc:
        with pytest.raises(RejectedError) as info:
            await svc.enqueue("missing", [MessageInput(priority=0, content="x")])
        assert info.value.code is RejectCode.QUEUE_NOT_FOUND
        await svc.create_queue("q", QueueType.DELAYED)
        with pytest.raises(RejectedError) as info:
            await svc.dequeue("q", ack=True)
        assert info.value.code is RejectCode.QUEUE_EMPTY
        with pytest.raises(RejectedError) as info:
            await svc.create_queue("q", QueueType.FAIR)
        assert info.value.code is RejectCode.CONFLICT


async def test_concurrent_writes_share_group_commits(tmp_path):
    async with single_node_service(str(tmp_path)) as svc:
        await svc.create_queue("q", QueueType.DELAYED)
        rounds_before = svc.raft.stats["rounds"]

        async def producer(i: int) -> None:
            await svc.enqueue("q", [MessageInput(priority=i, content="x")])

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(producer, i)
        assert (await svc.queue_info("q")).ready == 200
        assert svc.raft.stats["rounds"] - rounds_before < 200  # batched, not one round each


async def test_backup_and_restore_through_the_log(tmp_path):
    async with single_node_service(str(tmp_path)) as svc:
        await svc.create_queue("q", QueueType.DELAYED)
        await svc.enqueue("q", [MessageInput(priority=1, content="kept")])
        backup = await svc.backup()
        await svc.enqueue("q", [MessageInput(priority=2, content="after backup")])
        await svc.restore(backup)
        assert (await svc.queue_info("q")).ready == 1


async def test_servers_lists_the_node_with_its_http_address(tmp_path):
    async with single_node_service(str(tmp_path), http_address="127.0.0.1:8123") as svc:
        (server,) = svc.servers()
        assert server.http_address == "127.0.0.1:8123" and server.is_leader
        assert server.suffrage == "Voter" and svc.is_ready()
