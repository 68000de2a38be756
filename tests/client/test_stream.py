"""The streaming consumer (doq/client/stream.py) against a real one-node doq: the credit it grants
never lets more messages be delivered to it than ``prefetch`` unsettled; acks ride the socket;
a lost connection is reconnected with the messages in hand still ackable; a missing queue is
``QueueNotFound``; a server without the stream makes ``consume`` long-poll."""

from __future__ import annotations

import contextlib

import httpx
import trio

from doq.client import AsyncClient, Client, QueueNotFound, StaleReceipt
from doq.client.errors import error_for
from doq.client.models import Settlement
from doq.client.stream import StreamConsumer

DEADLINE_S = 20


async def _queue_counts(client: AsyncClient, queue: str) -> tuple[int, int]:
    info = await client.queue(queue)
    return info.ready, info.unacked


async def _until(predicate, what: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while not await predicate():
            await trio.sleep(0.01)


async def test_the_credit_never_lets_more_than_prefetch_be_delivered_unsettled(node):
    with Client(node.url) as c:
        c.create_queue("st-credit", ack_timeout=600)
        c.enqueue_many("st-credit", [str(i) for i in range(20)])
    async with AsyncClient(node.url) as client:
        consumer = await client.open_stream("st-credit", 5)
        assert isinstance(consumer, StreamConsumer)
        peak = 0
        dispatch = consumer._dispatch

        def counting(frame):
            nonlocal peak
            dispatch(frame)
            peak = max(peak, consumer.unsettled)

        consumer._dispatch = counting  # type: ignore[method-assign]
        held = []
        while len(held) < 5:
            held += await consumer.receive(5)
        await consumer.touch("st-credit", held[0].id, receipt=held[0].receipt)  # a round trip
        assert await _queue_counts(client, "st-credit") == (15, 5)
        for message in held[:2]:
            await consumer.ack("st-credit", message.id, receipt=message.receipt)
        while len(held) < 7:  # the two acks gave back two credits, and no more
            held += await consumer.receive(5)
        await consumer.touch("st-credit", held[2].id, receipt=held[2].receipt)
        assert await _queue_counts(client, "st-credit") == (13, 5)
        assert peak == 5 and consumer.unsettled == 5
        await consumer.aclose()  # gives back what was delivered and not handed out: nothing here
        for message in held[2:]:  # after the close, over HTTP
            await consumer.ack("st-credit", message.id, receipt=message.receipt)
        assert await _queue_counts(client, "st-credit") == (13, 0)


async def test_a_thousand_acks_and_their_credit_go_in_bundles_the_server_takes(node):
    with Client(node.url) as c:
        c.create_queue("st-many", ack_timeout=600)
        c.enqueue_many("st-many", [str(i) for i in range(1000)])
    async with AsyncClient(node.url) as client:
        consumer = await client.open_stream("st-many", 1000)
        assert consumer is not None
        held: list = []
        while len(held) < 1000:
            held += await consumer.receive(1000)
        results = await consumer.settle_many("ack", [Settlement("ack", m) for m in held])
        assert [r.status for r in results] == ["ACKNOWLEDGED"] * 1000
        assert await _queue_counts(client, "st-many") == (0, 0)
        await consumer.aclose()


async def test_a_lost_connection_is_reconnected_and_the_messages_in_hand_still_ack(node):
    with Client(node.url) as c:
        c.create_queue("st-lost", ack_timeout=600)
        c.enqueue_many("st-lost", [str(i) for i in range(6)])
    async with AsyncClient(node.url) as client:
        consumer = await client.open_stream("st-lost", 3)
        assert consumer is not None
        held = []
        while len(held) < 3:
            held += await consumer.receive(3)
        assert consumer._socket is not None
        await consumer._socket._stream.aclose()  # the connection drops under the consumer
        for message in held:  # on a new socket, with the receipts of the old one
            await consumer.ack("st-lost", message.id, receipt=message.receipt)
        rest = []
        while len(rest) < 3:
            rest += await consumer.receive(3)
        for message in rest:
            await consumer.ack("st-lost", message.id, receipt=message.receipt)
        assert consumer.reconnects == 1
        assert sorted(int(m.content) for m in held + rest) == list(range(6))
        assert await _queue_counts(client, "st-lost") == (0, 0)
        with contextlib.suppress(Exception):
            await consumer.ack("st-lost", held[0].id, receipt=held[0].receipt)
        await consumer.aclose()


async def test_a_stale_receipt_on_the_stream_is_a_stale_receipt(node):
    with Client(node.url) as c:
        c.create_queue("st-stale", ack_timeout=600)
        c.enqueue("st-stale", "x")
    async with (
        AsyncClient(node.url) as client,
        contextlib.aclosing(client.consume("st-stale", prefetch=1)) as deliveries,
    ):
        async for delivery in deliveries:
            await client.nack("st-stale", delivery.id, receipt=delivery.receipt)  # over HTTP
            try:
                await delivery.ack()  # on the socket, with the receipt of a delivery over
            except StaleReceipt:
                break
            raise AssertionError("an ack with a stale receipt was accepted")


async def test_consuming_a_missing_queue_is_queue_not_found(node):
    async with AsyncClient(node.url) as client:
        try:
            async with contextlib.aclosing(client.consume("st-none")) as deliveries:
                async for _ in deliveries:
                    raise AssertionError("a message from a queue that is not there")
        except QueueNotFound:
            return
        raise AssertionError("no QueueNotFound")


async def _refusing_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """An HTTP server that answers 404 to everything, a WebSocket upgrade included."""

    async def answer(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(answer, listeners)


async def test_a_server_without_the_stream_gets_no_stream_consumer():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_refusing_server)
        async with AsyncClient(f"http://127.0.0.1:{port}", attempts_max=1) as client:
            assert await client.open_stream("q", 8) is None
        nursery.cancel_scope.cancel()


def test_refusals_carry_their_kind_in_a_header_and_the_body_is_unchanged(node):
    with httpx.Client(base_url=node.url) as http:
        answer = http.get("/API/v1/queues/st-missing")
        assert answer.status_code == 404
        assert answer.headers["x-doq-problem"] == "queue_not_found"
        assert set(answer.json()) == {"$schema", "title", "status", "detail"}


def test_the_kind_decides_the_error_whatever_the_detail_says():
    assert isinstance(error_for(404, {"detail": "no such thing"}, None, "queue_not_found"),
                      QueueNotFound)  # fmt: skip
    assert isinstance(error_for(409, {"detail": "over"}, None, "stale_receipt"), StaleReceipt)
    assert type(error_for(409, {"detail": "receipt"}, None, "conflict")).__name__ == "Conflict"
