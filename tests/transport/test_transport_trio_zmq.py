"""The pyzmq <-> Trio bridge: no lost wakeups under concurrent load, clean close and cancellation.

The stress test follows /work/shared/examples/trio_zmq_stress.py, which told a correct bridge from
naive ones (they hung within seconds): many tasks send on one DEALER while another receives, and a
ROUTER's receiver hands requests to several replier tasks, so operations by one task keep
consuming the edge another task sleeps on. Every RPC must complete before the deadline.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
import zmq

from raft_zmq.trio_zmq import TrioZmqSocket

DEADLINE_S = 30.0  # far above the few seconds these take; a hang fails instead of blocking CI


@contextmanager
def zmq_context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


def _socket(context: zmq.Context, kind: int, *, hwm: int = 1000) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


@contextmanager
def tcp_pair(hwm: int = 1000) -> Iterator[tuple[TrioZmqSocket, TrioZmqSocket]]:
    """A ROUTER on an ephemeral 127.0.0.1 port and a DEALER connected to it. The ROUTER is
    mandatory: at the high-water mark its sends wait like the DEALER's instead of dropping."""
    with zmq_context() as context:
        router = _socket(context, zmq.ROUTER, hwm=hwm)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.bind("tcp://127.0.0.1:0")
        dealer = _socket(context, zmq.DEALER, hwm=hwm)
        dealer.connect(router.getsockopt(zmq.LAST_ENDPOINT).decode())
        r, d = TrioZmqSocket(router), TrioZmqSocket(dealer)
        try:
            yield r, d
        finally:
            r.close()
            d.close()


@contextmanager
def inproc_pair(hwm: int) -> Iterator[tuple[TrioZmqSocket, TrioZmqSocket]]:
    """Two PAIR sockets over inproc: the queue between them holds exactly 2 * hwm messages."""
    with zmq_context() as context:
        a = _socket(context, zmq.PAIR, hwm=hwm)
        a.bind("inproc://pair")
        b = _socket(context, zmq.PAIR, hwm=hwm)
        b.connect("inproc://pair")
        ta, tb = TrioZmqSocket(a), TrioZmqSocket(b)
        try:
            yield ta, tb
        finally:
            ta.close()
            tb.close()


async def test_concurrent_rpcs_in_both_directions_all_complete() -> None:
    workers, rpcs_per_worker, repliers = 64, 40, 8
    sizes_b = [16, 100, 1000, 4096, 65536]
    rng = random.Random(20240501)
    with tcp_pair(hwm=8) as (router, dealer), trio.fail_after(DEADLINE_S):
        pending: dict[int, tuple[trio.Event, bytes]] = {}
        requests_in, requests_out = trio.open_memory_channel[list[bytes]](100)

        async def server_receiver() -> None:
            while True:
                for request in await router.recv_batch(64):
                    await requests_in.send(request)

        async def replier() -> None:
            async for identity, body in requests_out:
                if rng.random() < 0.1:
                    await trio.lowlevel.checkpoint()  # reorder replies a little
                await router.send([identity, body])

        async def dispatcher() -> None:
            while True:
                (body,) = await dealer.recv()
                (rpc_id,) = struct.unpack_from("<Q", body)
                done, expected = pending.pop(rpc_id)
                assert body == expected
                done.set()

        async def rpc_worker(worker: int) -> None:
            for n in range(rpcs_per_worker):
                rpc_id = worker << 32 | n
                body = struct.pack("<Q", rpc_id) + rng.randbytes(rng.choice(sizes_b))
                done = trio.Event()
                pending[rpc_id] = (done, body)
                await dealer.send([body])
                await done.wait()

        async with trio.open_nursery() as services:
            services.start_soon(server_receiver)
            services.start_soon(dispatcher)
            for _ in range(repliers):
                services.start_soon(replier)
            async with trio.open_nursery() as clients:
                for worker in range(workers):
                    clients.start_soon(rpc_worker, worker)
            services.cancel_scope.cancel()
        assert not pending


async def test_recv_batch_drains_up_to_the_limit_in_order() -> None:
    with tcp_pair() as (router, dealer), trio.fail_after(DEADLINE_S):
        for n in range(10):
            assert dealer.send_nowait([b"%d" % n])
        received: list[bytes] = []
        while len(received) < 10:
            batch = await router.recv_batch(4)
            assert 1 <= len(batch) <= 4
            received.extend(body for _identity, body in batch)
        assert received == [b"%d" % n for n in range(10)]
        assert router.recv_nowait() is None


async def test_send_waits_at_the_high_water_mark_until_the_peer_reads() -> None:
    with inproc_pair(hwm=2) as (a, b), trio.fail_after(DEADLINE_S):
        accepted = [a.send_nowait([b"%d" % n]) for n in range(8)]
        assert accepted == [True] * 4 + [False] * 4  # SNDHWM + RCVHWM
        sent = trio.Event()

        async def blocked_sender() -> None:
            await a.send([b"late"])
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()
            received = [await b.recv() for _ in range(5)]
            await sent.wait()
        assert received == [[b"0"], [b"1"], [b"2"], [b"3"], [b"late"]]


async def test_close_wakes_every_waiting_receiver_with_closed_resource_error() -> None:
    with tcp_pair() as (router, _dealer), trio.fail_after(DEADLINE_S):
        outcomes: list[str] = []

        async def receiver() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await router.recv()
            outcomes.append("closed")

        async with trio.open_nursery() as nursery:
            for _ in range(3):  # one sleeps on the fd, two are parked
                nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            router.close()
        assert outcomes == ["closed"] * 3
        assert router.closed
        with pytest.raises(trio.ClosedResourceError):
            router.send_nowait([b"x", b"y"])


async def test_cancelling_the_fd_sleeper_hands_the_wait_to_a_parked_task() -> None:
    with tcp_pair() as (router, dealer), trio.fail_after(DEADLINE_S):
        got: list[list[bytes]] = []

        async def receiver() -> None:
            got.append(await router.recv())

        async with trio.open_nursery() as outer:
            with trio.CancelScope() as first_scope:
                async with trio.open_nursery() as first:
                    first.start_soon(receiver)  # starts first, so it sleeps on the fd
                    await trio.testing.wait_all_tasks_blocked()
                    outer.start_soon(receiver)  # parks behind it
                    await trio.testing.wait_all_tasks_blocked()
                    first_scope.cancel()
            assert not got
            assert dealer.send_nowait([b"after the cancel"])
        assert [body for _identity, body in got] == [b"after the cancel"]


async def test_a_cancelled_receive_takes_no_message() -> None:
    with tcp_pair() as (router, dealer), trio.fail_after(DEADLINE_S):
        with trio.move_on_after(0.01):
            await router.recv()
        assert dealer.send_nowait([b"kept"])
        (_identity, body) = await router.recv()
        assert body == b"kept"
