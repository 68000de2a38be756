"""``AsyncClient`` has ``Client``'s surface and works under Trio and under asyncio (anyio)."""

from __future__ import annotations

import asyncio
import inspect
import threading

import trio

from doq.client import AsyncClient, Client, QueueEmpty


def test_the_async_client_has_every_method_of_the_blocking_one():
    def public(cls):
        return {n for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v)}

    # open_stream: the WebSocket consumer is async only (the blocking consume long-polls).
    assert public(Client) - {"close"} == public(AsyncClient) - {"aclose", "open_stream"}


async def _round_trip(url: str, queue: str) -> list[str]:
    async with AsyncClient(url) as client:
        await client.create_queue(queue, ack_timeout=30)
        await client.enqueue_many(queue, ["a", "b"])
        sent = await client.enqueue(queue, "c")
        assert not sent.duplicate
        seen = []
        async for msg in client.consume(queue, prefetch=2, wait=0.5):
            seen.append(msg.content)
            await msg.ack()
            if len(seen) == 3:
                break
        try:
            await client.dequeue(queue)
        except QueueEmpty:
            seen.append("empty")
        return seen


async def test_under_trio(node):
    assert await _round_trip(node.url, "async-trio") == ["a", "b", "c", "empty"]


def in_own_thread(function, *args):
    """``function(*args)`` in a thread of its own: ``asyncio.run`` leaves its thread without an
    event loop (set to None), which would break later tests that expect the main thread's."""
    result: list = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function(*args))
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    return result[0]


def test_under_asyncio(node):
    got = in_own_thread(asyncio.run, _round_trip(node.url, "async-asyncio"))
    assert got == ["a", "b", "c", "empty"]


def test_under_trio_run(node):
    assert trio.run(_round_trip, node.url, "async-trio-run") == ["a", "b", "c", "empty"]


async def test_an_async_consumer_closed_gives_back_what_it_had_not_handed_out(node):
    from contextlib import aclosing

    async with AsyncClient(node.url) as client:
        await client.create_queue("async-prefetch", ack_timeout=600)
        await client.enqueue_many("async-prefetch", ["1", "2", "3"])
        async with aclosing(client.consume("async-prefetch", prefetch=3, wait=0.5)) as consumer:
            async for delivery in consumer:
                await delivery.ack()
                break
        info = await client.queue("async-prefetch")
    assert (info.ready, info.unacked) == (2, 0)
