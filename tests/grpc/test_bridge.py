"""The gRPC thread's listening socket: asyncio turns Nagle off only on connections of a socket
whose protocol says TCP; without it each answer waited for the client's delayed ACK (~40 ms)."""

from __future__ import annotations

import asyncio
import socket
import threading

import trio

from doq.grpc.bridge import PortalClosed, TrioPortal, _listener


def test_the_listener_is_a_tcp_socket_so_answers_are_sent_at_once():
    sock = _listener("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


async def test_a_call_whose_trio_task_is_cancelled_by_the_node_gets_an_answer():
    """The node stopping cancels the portal's nursery: the asyncio side must hear of it (and
    answer the gRPC call), not wait for ever."""
    outcome: list[str] = []
    waiting = threading.Event()

    async def wait_forever() -> None:
        waiting.set()
        await trio.sleep_forever()

    def asyncio_side(portal: TrioPortal) -> None:
        async def call() -> None:
            try:
                await asyncio.wait_for(portal.run(wait_forever), timeout=10)
            except PortalClosed:
                outcome.append("closed")
            except TimeoutError:
                outcome.append("no answer")

        asyncio.run(call())

    async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
        portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
        outer.start_soon(trio.to_thread.run_sync, asyncio_side, portal)
        await trio.to_thread.run_sync(waiting.wait)
        nursery.cancel_scope.cancel()
    assert outcome == ["closed"]
