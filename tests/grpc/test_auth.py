"""Bearer tokens over gRPC (docs/grpc.md, "Authentication"): a call's ``authorization`` metadata
is judged by the API's one scope table (doq/api/access.py), as an HTTP request's header is; 401 is
UNAUTHENTICATED, 403 PERMISSION_DENIED; a refused call changes nothing; no token is logged; a
follower relays the caller's token to the leader; with no token configured nothing changes."""

from __future__ import annotations

import functools
import logging

import grpc
import pytest
import trio

from doq import logs
from doq.grpc import doq_pb2 as pb
from doq.server import DoqNode

from .support import Client, node_settings, ready
from .test_cluster import _cluster, _follower

ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
CONSUMER = "consumer-token-0123456789"
TOKENS = f"{ADMIN} admin; {PRODUCER} produce; {CONSUMER} consume"
code = grpc.StatusCode


async def _closed_node(nursery: trio.Nursery, root: str, node_id: str = "solo") -> DoqNode:
    settings = node_settings(root, node_id, http__tokens=TOKENS)
    node = DoqNode(settings)
    await nursery.start(node.run)
    await ready(settings)
    return node


async def _ready_count(admin: Client, queue: str) -> tuple[int, int]:
    info = await admin.call("GetQueue", pb.GetQueueRequest(name=queue))
    return info.ready, info.total


async def test_a_produce_token_enqueues_but_cannot_delete_the_queue(tmp_path):
    async with trio.open_nursery() as nursery:
        node = await _closed_node(nursery, str(tmp_path))
        address = node.settings.grpc__address
        admin, producer = Client(address, ADMIN), Client(address, PRODUCER)
        consumer = Client(address, CONSUMER)
        try:
            await admin.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            sent = await producer.call("Enqueue", pb.EnqueueRequest(queueName="q", content="a"))
            assert sent.success and sent.content == "a"
            refused = await producer.error("DeleteQueue", pb.DeleteQueueRequest(name="q"))
            assert refused.code() == code.PERMISSION_DENIED
            assert "lacks the 'admin' scope" in refused.details()
            taking = await producer.error("Dequeue", pb.DequeueRequest(queueName="q"))
            assert taking.code() == code.PERMISSION_DENIED and "'consume'" in taking.details()
            assert await _ready_count(admin, "q") == (1, 1)  # refused calls changed nothing

            # Streams carry the call's metadata too, on every request they make.
            asks = [pb.EnqueueRequest(queueName="q", content=f"s{i}") for i in range(3)]
            streamed = await producer.run(
                lambda: list(producer.stub.EnqueueStream(iter(asks), metadata=producer.metadata))
            )
            assert [m.content for m in streamed] == ["s0", "s1", "s2"]
            ask = [pb.DequeueRequest(queueName="q", ack=True)]
            with pytest.raises(grpc.RpcError) as denied:
                await producer.run(
                    lambda: next(producer.stub.DequeueStream(iter(ask), metadata=producer.metadata))
                )
            assert denied.value.code() == code.PERMISSION_DENIED
            taken = await consumer.run(
                lambda: next(consumer.stub.DequeueStream(iter(ask), metadata=consumer.metadata))
            )
            assert taken.content == "a"
            assert await _ready_count(admin, "q") == (3, 3)
            await admin.call("DeleteQueue", pb.DeleteQueueRequest(name="q"))
        finally:
            for client in (admin, producer, consumer):
                client.close()
            node.stop()


@pytest.mark.parametrize(
    ("metadata", "detail"),
    [
        ((), "needs a bearer token"),
        ((("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),), "needs a bearer token"),
        ((("authorization", "Bearer wrong-token-0123456789"),), "is not valid"),
        ((("authorization", f"Bearer {ADMIN[:-1]}"),), "is not valid"),
    ],
    ids=["none", "basic", "unknown", "prefix"],
)
async def test_a_call_without_a_valid_token_is_unauthenticated(tmp_path, metadata, detail):
    async with trio.open_nursery() as nursery:
        node = await _closed_node(nursery, str(tmp_path))
        address = node.settings.grpc__address
        admin, stranger = Client(address, ADMIN), Client(address)
        try:
            await admin.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            calls = [
                ("GetQueues", pb.GetQueuesRequest()),
                ("Enqueue", pb.EnqueueRequest(queueName="q", content="x")),
                ("DeleteQueue", pb.DeleteQueueRequest(name="q")),
            ]
            for method, request in calls:
                rpc = getattr(stranger.stub, method)
                call = functools.partial(rpc, request, metadata=metadata, timeout=20)
                with pytest.raises(grpc.RpcError) as refused:
                    await stranger.run(call)
                assert refused.value.code() == code.UNAUTHENTICATED, method
                assert detail in refused.value.details()
                assert "authorization: Bearer <token>" in refused.value.details()
            assert await _ready_count(admin, "q") == (0, 0)
        finally:
            admin.close()
            stranger.close()
            node.stop()


@pytest.fixture
def launcher_logs(capsys):
    """The logging the launcher sets up (doq/logs.py), at debug, into captured stderr; the test's
    own logging restored after."""
    root = logging.getLogger()
    names = (*logs.REQUEST_LOGGERS, *logs.HEADER_LOGGERS)
    saved = root.handlers[:], root.level, [logging.getLogger(n).level for n in names]
    logs.setup("solo", "debug", "console")
    try:
        yield lambda: capsys.readouterr().err
    finally:
        root.handlers[:], root.level, levels = saved
        for name, level in zip(names, levels):
            logging.getLogger(name).setLevel(level)


async def test_no_token_reaches_the_logs_even_at_debug(tmp_path, launcher_logs):
    guess = "guess-token-0123456789"
    async with trio.open_nursery() as nursery:
        node = await _closed_node(nursery, str(tmp_path))
        address = node.settings.grpc__address
        clients = [Client(address, token) for token in (ADMIN, PRODUCER, guess)]
        try:
            await clients[0].call("CreateQueue", pb.CreateQueueRequest(name="q", type="fair"))
            await clients[1].call("Enqueue", pb.EnqueueRequest(queueName="q", content="x"))
            await clients[1].error("DeleteQueue", pb.DeleteQueueRequest(name="q"))
            await clients[2].error("GetQueues", pb.GetQueuesRequest())
        finally:
            for client in clients:
                client.close()
            node.stop()
    text = launcher_logs()
    assert "serving HTTP on" in text  # the node's logs were captured: the check below looks
    for token in (ADMIN, PRODUCER, guess):
        assert token not in text


async def test_with_no_token_configured_a_token_is_ignored(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await ready(settings)
        anonymous, bearer = Client(settings.grpc__address), Client(settings.grpc__address, ADMIN)
        try:
            await anonymous.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            await bearer.call("Enqueue", pb.EnqueueRequest(queueName="q", content="x"))
            await anonymous.call("DeleteQueue", pb.DeleteQueueRequest(name="q"))
            assert not (await bearer.call("GetQueues", pb.GetQueuesRequest())).queues
        finally:
            anonymous.close()
            bearer.close()
            node.stop()


async def test_a_follower_relays_the_callers_token_to_the_leader(tmp_path):
    async with trio.open_nursery() as nursery:
        nodes = await _cluster(nursery, str(tmp_path), http__tokens=TOKENS)
        address = _follower(nodes).settings.grpc__address
        admin, producer = Client(address, ADMIN), Client(address, PRODUCER)
        stranger = Client(address)
        try:
            await admin.call("CreateQueue", pb.CreateQueueRequest(name="q", type="delayed"))
            await producer.call("Enqueue", pb.EnqueueRequest(queueName="q", content="x"))
            denied = await producer.error("DeleteQueue", pb.DeleteQueueRequest(name="q"))
            assert denied.code() == code.PERMISSION_DENIED
            anonymous = await stranger.error("Enqueue", pb.EnqueueRequest(queueName="q"))
            assert anonymous.code() == code.UNAUTHENTICATED
            assert await _ready_count(admin, "q") == (1, 1)
        finally:
            for client in (admin, producer, stranger):
                client.close()
            for node in nodes:
                node.stop()
