"""The ``DOQ`` service on a 3-node cluster (in-process nodes on 127.0.0.1) with a generated
client: a follower serves any call, EnqueueStream, and DequeueStream woken by an enqueue."""

from __future__ import annotations

import queue as stdlib_queue
import threading

import grpc
import trio

from doq.grpc import doq_pb2 as pb
from doq.server import DoqNode

from .support import Client, node_settings, ready

VOTERS_S_MAX = 20


async def _cluster(nursery: trio.Nursery, root: str, **overrides: object) -> list[DoqNode]:
    first = node_settings(root, "a", **overrides)
    nodes = [DoqNode(first)]
    await nursery.start(nodes[0].run)
    await ready(first)
    for node_id in ("b", "c"):
        join = f"127.0.0.1:{first.http__port}"
        settings = node_settings(root, node_id, cluster__join_addr=join, **overrides)
        nodes.append(DoqNode(settings))
        await nursery.start(nodes[-1].run)
    with trio.fail_after(VOTERS_S_MAX):
        while len([s for s in nodes[0].service.servers() if s.suffrage == "Voter"]) < 3:
            await trio.sleep(0.02)
    for node in nodes[1:]:
        await ready(node.settings)
    return nodes


def _follower(nodes: list[DoqNode]) -> DoqNode:
    return next(node for node in nodes if not node.raft.is_leader)


async def test_a_follower_serves_calls_and_streams(tmp_path):
    async with trio.open_nursery() as nursery:
        nodes = await _cluster(nursery, str(tmp_path))
        follower = _follower(nodes)
        client = Client(follower.settings.grpc__address)
        try:
            await client.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            sent = await client.call("Enqueue", pb.EnqueueRequest(queueName="q", content="one"))
            got = await client.call("Get", pb.GetRequest(queueName="q", id=sent.id))
            assert got.content == "one"
            missing = await client.error("GetQueue", pb.GetQueueRequest(name="nope"))
            assert missing.code() == grpc.StatusCode.NOT_FOUND

            requests = [pb.EnqueueRequest(queueName="q", content=f"s{i}") for i in range(5)]
            streamed = await client.run(lambda: list(client.stub.EnqueueStream(iter(requests))))
            assert [r.content for r in streamed] == [f"s{i}" for i in range(5)]
            assert len({r.id for r in streamed}) == 5
            info = await client.call("GetQueue", pb.GetQueueRequest(name="q"))
            assert info.ready == 6
        finally:
            client.close()
            for node in nodes:
                node.stop()


async def test_dequeue_stream_on_a_follower_is_woken_by_an_enqueue(tmp_path):
    async with trio.open_nursery() as nursery:
        nodes = await _cluster(nursery, str(tmp_path))
        follower = _follower(nodes)
        consumer = Client(follower.settings.grpc__address)
        producer = Client(nodes[0].settings.grpc__address)
        asks: stdlib_queue.Queue[pb.DequeueRequest | None] = stdlib_queue.Queue()
        received: list[pb.DequeueResponse] = []
        arrived = threading.Event()
        try:
            await producer.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            await producer.call("Enqueue", pb.EnqueueRequest(queueName="q", content="first"))
            stream = consumer.stub.DequeueStream(iter(asks.get, None), timeout=30)

            def consume() -> None:
                for response in stream:
                    received.append(response)
                    arrived.set()

            consumed = trio.Event()

            async def consumer_thread() -> None:
                await trio.to_thread.run_sync(consume)
                consumed.set()

            asks.put(pb.DequeueRequest(queueName="q", ack=True))
            nursery.start_soon(consumer_thread)
            with trio.fail_after(10):
                await trio.to_thread.run_sync(arrived.wait)
            assert [r.content for r in received] == ["first"]
            # The queue is empty now: the next ask waits on the leader until an enqueue wakes it.
            arrived.clear()
            asks.put(pb.DequeueRequest())
            await trio.sleep(0.3)
            assert len(received) == 1
            woken_at = trio.current_time()
            await producer.call("Enqueue", pb.EnqueueRequest(queueName="q", content="second"))
            with trio.fail_after(10):
                await trio.to_thread.run_sync(arrived.wait)
            assert [r.content for r in received] == ["first", "second"]
            assert trio.current_time() - woken_at < 5  # an event, not the 20 s wait's end
            info = await producer.call("GetQueue", pb.GetQueueRequest(name="q"))
            assert info.total == 0  # both taken with ack=True
            asks.put(None)  # the client ends its stream; the server ends the call
            with trio.fail_after(10):
                await consumed.wait()
        finally:
            consumer.close()
            producer.close()
            for node in nodes:
                node.stop()
