"""Which gRPC server library for doq's Trio node: unary calls per second, each answered in Trio.

``doq bench grpc-servers [--seconds S] [--concurrency C]`` serves ``queue.DOQ/GenerateIDs`` with
each candidate in this process, every call answered by a Trio coroutine (as a node answers it),
and loads it from a separate client process (grpcio's asyncio client, C calls in flight) for S
seconds. Candidates:

- ``grpcio-thread``: grpcio's asyncio server in a thread, calls bridged into Trio by the portal
  of doq/grpc/bridge.py;
- ``grpclib-thread``: grpclib (pure Python, asyncio only) in a thread, the same portal
  (doq/grpc/bridge.py: what doq runs);
- ``grpcio-asyncio``: grpcio's asyncio server answering in asyncio, no Trio: the ceiling the
  bridge is measured against.

purerpc, the one library that runs on Trio itself, is not a candidate: its last release (0.8.0,
2022) requires h2 < 4, and Hypercorn, doq's HTTP server, requires h2 >= 4.3; both cannot be
installed. Figures and the choice: docs/grpc.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import trio

from doq.grpc import doq_pb2 as pb
from doq.grpc import doq_pb2_grpc as pb_grpc
from doq.grpc.bridge import GrpcThread, TrioPortal

KINDS = ("grpcio-thread", "grpclib-thread", "grpcio-asyncio")
METHOD = "/queue.DOQ/GenerateIDs"
STOP_GRACE_S = 1.0


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


def _grpclib_servable(portal: TrioPortal, counter: _Counter) -> Any:
    import grpclib.const

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

    return Servable()


class _GrpcioThread:
    """One asyncio loop in a thread serving a grpcio server; ``start`` and ``stop`` from Trio."""

    def __init__(
        self,
        address: str,
        register: Callable[[grpc.aio.Server], None],
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.address = address
        self.port: int | None = None  # the port bound (the address may say 0)
        self._register = register
        self._interceptors = tuple(interceptors)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="grpcio", daemon=True)

    async def start(self) -> None:
        self._thread.start()
        await trio.to_thread.run_sync(self._started.wait)
        if self._error is not None:
            raise self._error

    async def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(server.stop(STOP_GRACE_S), loop)
        await trio.to_thread.run_sync(self._thread.join)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread ends here
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = grpc.aio.server(interceptors=self._interceptors)
        self._register(server)
        self.port = server.add_insecure_port(self.address)
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {self.address}")
        await server.start()
        self._server = server
        self._started.set()
        await server.wait_for_termination()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _measure(kind: str, seconds: float, concurrency: int) -> dict[str, Any]:
    port = _free_port()
    counter = _Counter()
    async with trio.open_nursery() as nursery:
        portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
        thread: GrpcThread | _GrpcioThread
        if kind == "grpclib-thread":
            thread = GrpcThread("127.0.0.1", port, [_grpclib_servable(portal, counter)])
        else:
            servicer = (
                _GrpcioBridged(portal, counter) if kind == "grpcio-thread" else _GrpcioAsyncio()
            )
            thread = _GrpcioThread(
                f"127.0.0.1:{port}", lambda s: pb_grpc.add_DOQServicer_to_server(servicer, s)
            )
        await thread.start()
        argv = [sys.executable, "-m", "doq.bench.grpc_servers", "--client", f"127.0.0.1:{port}"]
        argv += ["--seconds", str(seconds), "--concurrency", str(concurrency)]
        done = await trio.run_process(argv, capture_stdout=True)
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
