"""Which gRPC server library for doq's Trio node: unary calls per second, each answered in Trio.

``doq bench grpc-servers [--seconds S] [--concurrency C]`` serves ``queue.DOQ/GenerateIDs`` with
each candidate in this process, every call answered by a Trio coroutine (as a node answers it),
and loads it from a separate client process (grpcio's asyncio client, C calls in flight) for S
seconds. Candidates:

- ``grpcio-thread``: grpcio's asyncio server in a thread, calls bridged into Trio
  (doq/grpc/bridge.py: what doq runs);
- ``grpclib-thread``: grpclib (pure Python, asyncio only) in a thread, the same bridge;
- ``grpcio-asyncio``: grpcio's asyncio server answering in asyncio, no Trio: the ceiling the
  bridge is measured against.

purerpc, the one library that runs on Trio itself, is not a candidate: its last release (0.8.0,
2022) requires h2 < 4, and Hypercorn, doq's HTTP server, requires h2 >= 4.3; both cannot be
installed. Figures and the choice: docs/grpc.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import trio

from doq.grpc import doq_pb2 as pb
from doq.grpc import doq_pb2_grpc as pb_grpc
from doq.grpc.bridge import GrpcThread, TrioPortal

KINDS = ("grpcio-thread", "grpclib-thread", "grpcio-asyncio")
METHOD = "/queue.DOQ/GenerateIDs"


class _Counter:
    def __init__(self) -> None:
        self.next_id = 0

    async def answer(self, number: int) -> pb.GenerateIDsResponse:
        await trio.lowlevel.checkpoint()  # a Trio coroutine, as a node's answer is
        self.next_id += number
        return pb.GenerateIDsResponse(success=True, ids=[self.next_id])


class _GrpcioBridged(pb_grpc.DOQServicer):
    def __init__(self, portal: TrioPortal, counter: _Counter) -> None:
        self._portal, self._counter = portal, counter

    async def GenerateIDs(self, request: Any, context: Any) -> Any:
        return await self._portal.run(self._counter.answer, request.number)


class _GrpcioAsyncio(pb_grpc.DOQServicer):
    def __init__(self) -> None:
        self.next_id = 0

    async def GenerateIDs(self, request: Any, context: Any) -> Any:
        await asyncio.sleep(0)
        self.next_id += request.number
        return pb.GenerateIDsResponse(success=True, ids=[self.next_id])


def _grpclib_thread(portal: TrioPortal, counter: _Counter) -> Callable[[], Any]:
    import grpclib.const
    import grpclib.server

    class Servable:
        def __mapping__(self) -> dict[str, Any]:
            return {
                METHOD: grpclib.const.Handler(
                    self.generate,
                    grpclib.const.Cardinality.UNARY_UNARY,
                    pb.GenerateIDsRequest,
                    pb.GenerateIDsResponse,
                )
            }

        async def generate(self, stream: Any) -> None:
            request = await stream.recv_message()
            await stream.send_message(await portal.run(counter.answer, request.number))

    return lambda: grpclib.server.Server([Servable()])


async def _serve_grpclib(
    portal: TrioPortal, counter: _Counter, port: int, stop: trio.Event
) -> None:
    import threading

    make = _grpclib_thread(portal, counter)
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        server = make()
        await server.start("127.0.0.1", port)
        holder["loop"], holder["server"] = asyncio.get_running_loop(), server
        started.set()
        await server.wait_closed()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    await trio.to_thread.run_sync(started.wait)
    await stop.wait()
    holder["loop"].call_soon_threadsafe(holder["server"].close)
    await trio.to_thread.run_sync(thread.join)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _measure(kind: str, seconds: float, concurrency: int) -> dict[str, Any]:
    port = _free_port()
    counter = _Counter()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
        thread: GrpcThread | None = None
        if kind == "grpclib-thread":
            nursery.start_soon(_serve_grpclib, portal, counter, port, stop)
        else:
            servicer = (
                _GrpcioBridged(portal, counter) if kind == "grpcio-thread" else _GrpcioAsyncio()
            )
            thread = GrpcThread(
                f"127.0.0.1:{port}", lambda s: pb_grpc.add_DOQServicer_to_server(servicer, s)
            )
            await thread.start()
        argv = [sys.executable, "-m", "doq.bench.grpc_servers", "--client", f"127.0.0.1:{port}"]
        argv += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
        done = await trio.run_process(argv, capture_stdout=True)
        stop.set()
        if thread is not None:
            await thread.stop()
        nursery.cancel_scope.cancel()
    result: dict[str, Any] = json.loads(done.stdout)
    return {"server": kind, **result}


async def _client(address: str, seconds: float, concurrency: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.DOQStub(channel)
        await stub.GenerateIDs(pb.GenerateIDsRequest(number=1), timeout=10)  # connected
        ends_at = time.monotonic() + seconds
        latencies: list[float] = []

        async def caller() -> None:
            while time.monotonic() < ends_at:
                started = time.perf_counter()
                await stub.GenerateIDs(pb.GenerateIDsRequest(number=1))
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    latencies.sort()
    return {
        "calls_per_s": round(len(latencies) / seconds),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doq bench grpc-servers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--client", help=argparse.SUPPRESS)  # the load process
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(asyncio.run(_client(args.client, args.seconds, args.concurrency))))
        return 0
    for kind in args.kinds.split(","):
        print(json.dumps(trio.run(_measure, kind, args.seconds, args.concurrency)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
