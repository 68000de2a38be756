"""Every RPC of the Go server's ``DOQ`` service against one real node, with a generated client:
REST's semantics, and REST's errors as gRPC status codes (docs/grpc.md)."""

from __future__ import annotations

import grpc
import trio

from doq.grpc import doq_pb2 as pb
from doq.server import DoqNode

from ..support import free_port
from .support import Client, node_settings, ready

S = pb.QueueSettings


async def test_every_unary_call_on_one_node(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await ready(settings)
        client = Client(settings.grpc__address)
        try:
            created = await client.call(
                "CreateQueue",
                pb.CreateQueueRequest(name="jobs", type="fair", settings=S(strategy=S.WEIGHTED)),
            )
            assert created.success
            ids = await client.call("GenerateIDs", pb.GenerateIDsRequest(number=3))
            assert len(ids.ids) == 3 and list(ids.ids) == sorted(ids.ids)
            sent = await client.call(
                "Enqueue",
                pb.EnqueueRequest(queueName="jobs", priority=5, content="a", metadata={"k": "v"}),
            )
            assert sent.success and sent.id > 0 and sent.group == "default"
            assert dict(sent.metadata) == {"k": "v"} and sent.queueName == "jobs"
            got = await client.call("Get", pb.GetRequest(queueName="jobs", id=sent.id))
            assert got.content == "a" and got.priority == 5
            await client.call(
                "UpdatePriority", pb.UpdatePriorityRequest(queueName="jobs", id=sent.id, priority=2)
            )
            info = await client.call("GetQueue", pb.GetQueueRequest(name="jobs"))
            assert (info.name, info.type, info.ready, info.total) == ("jobs", "fair", 1, 1)
            assert info.settings.strategy == S.WEIGHTED
            taken = await client.call("Dequeue", pb.DequeueRequest(queueName="jobs"))
            assert taken.id == sent.id and taken.priority == 2
            assert (
                await client.call("Touch", pb.TouchRequest(queueName="jobs", id=sent.id))
            ).success
            await client.call("Nack", pb.NackRequest(queueName="jobs", id=sent.id, priority=7))
            again = await client.call("Dequeue", pb.DequeueRequest(queueName="jobs"))
            assert again.id == sent.id and again.priority == 7
            assert (await client.call("Ack", pb.AckRequest(queueName="jobs", id=sent.id))).success
            other = await client.call("Enqueue", pb.EnqueueRequest(queueName="jobs", content="b"))
            await client.call("Delete", pb.DeleteRequest(queueName="jobs", id=other.id))
            await client.call(
                "UpdateQueue",
                pb.UpdateQueueRequest(name="jobs", settings=S(max_unacked=3, ack_timeout=9)),
            )
            listed = await client.call("GetQueues", pb.GetQueuesRequest())
            assert [(q.name, q.total, q.settings.max_unacked) for q in listed.queues] == [
                ("jobs", 0, 3)
            ]
            assert not (await client.call("GetQueues", pb.GetQueuesRequest(type="delayed"))).queues
            await client.call("DeleteQueue", pb.DeleteQueueRequest(name="jobs"))
            assert not (await client.call("GetQueues", pb.GetQueuesRequest())).queues
        finally:
            client.close()
            node.stop()


async def test_errors_are_grpc_status_codes(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await ready(settings)
        client = Client(settings.grpc__address)
        code = grpc.StatusCode
        try:
            missing = await client.error("GetQueue", pb.GetQueueRequest(name="nope"))
            assert missing.code() == code.NOT_FOUND and "nope" in missing.details()
            enq = pb.EnqueueRequest(queueName="nope", content="x")
            assert (await client.error("Enqueue", enq)).code() == code.NOT_FOUND
            bad_ids = await client.error("GenerateIDs", pb.GenerateIDsRequest(number=0))
            assert bad_ids.code() == code.INVALID_ARGUMENT and "number" in bad_ids.details()
            bad_type = pb.CreateQueueRequest(name="q", type="lifo")
            assert (await client.error("CreateQueue", bad_type)).code() == code.INVALID_ARGUMENT
            bad_name = pb.CreateQueueRequest(name="a/b", type="fair")
            assert (await client.error("CreateQueue", bad_name)).code() == code.INVALID_ARGUMENT
            await client.call("CreateQueue", pb.CreateQueueRequest(name="q", type="fair"))
            other_type = pb.CreateQueueRequest(name="q", type="delayed")
            assert (await client.error("CreateQueue", other_type)).code() == code.ALREADY_EXISTS
            empty = await client.error("Dequeue", pb.DequeueRequest(queueName="q"))
            assert empty.code() == code.FAILED_PRECONDITION
            gone = pb.AckRequest(queueName="q", id=12345)
            assert (await client.error("Ack", gone)).code() == code.NOT_FOUND
            delayed = pb.CreateQueueRequest(name="d", type="delayed", settings=S(max_unacked=1))
            # REST's 409 on a create is ALREADY_EXISTS, this one too (docs/grpc.md, "Errors").
            conflict = await client.error("CreateQueue", delayed)
            assert "delayed queue has no groups" in conflict.details()
        finally:
            client.close()
            node.stop()


async def test_a_dequeue_stream_cancelled_while_waiting_takes_nothing(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await ready(settings)
        client = Client(settings.grpc__address)
        waits = node._app.app.doq.waits
        try:
            await client.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            asks = iter([pb.DequeueRequest(queueName="q", ack=True)])
            stream = client.stub.DequeueStream(asks, timeout=30)
            with trio.fail_after(10):
                while waits.waiting("q") == 0:  # held on the leader: the queue is empty
                    await trio.sleep(0.01)
            stream.cancel()
            with trio.fail_after(10):
                while waits.waiting("q") > 0:  # the cancellation reached the waiting request
                    await trio.sleep(0.01)
            await client.call("Enqueue", pb.EnqueueRequest(queueName="q", content="kept"))
            info = await client.call("GetQueue", pb.GetQueueRequest(name="q"))
            assert (info.ready, info.total) == (1, 1)
        finally:
            client.close()
            node.stop()


async def test_an_open_client_channel_does_not_hold_up_shutdown(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    client = Client(settings.grpc__address)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            await ready(settings)
            await client.call("GetQueues", pb.GetQueuesRequest())  # the channel is connected
            stopped_at = trio.current_time()
            node.stop()
        assert trio.current_time() - stopped_at < 3
    finally:
        client.close()


async def test_no_leader_in_time_is_unavailable_with_retry_after(tmp_path):
    # A node told to join an address where nobody listens never learns a leader: a call waits
    # for one until the request's deadline, then is UNAVAILABLE, with REST's Retry-After.
    settings = node_settings(
        str(tmp_path),
        "lonely",
        cluster__join_addr=f"127.0.0.1:{free_port()}",
        http__request_timeout=0.5,
    )
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        client = Client(settings.grpc__address)
        try:
            error = await client.error("GetQueues", pb.GetQueuesRequest())
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "no leader" in error.details()
            assert ("retry-after", "1") in tuple(error.trailing_metadata())
        finally:
            client.close()
            node.stop()
