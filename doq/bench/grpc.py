"""``doq bench grpc``: gRPC load on a doq node (the Go server's ``DOQ`` service, docs/grpc.md).

    doq bench grpc --address HOST:PORT [--streams N] [--seconds S] [--json]

Three phases on a fresh queue, each for S seconds with N callers (grpcio's asyncio client, the
generated stub, 100-byte messages), messages per second and p50/p99 latency of each:

- ``unary_enqueue``: N callers, one Enqueue call after another;
- ``stream_enqueue``: N EnqueueStream calls, each with up to ``STREAM_WINDOW`` requests written
  ahead of the answers read (latency: from a request's write to its answer);
- ``dequeue_stream_ack``: N DequeueStream calls (``ack`` false), each message acked with an Ack
  call before the stream is asked for the next (latency: from the ask to the ack's answer), until
  S seconds pass or every message enqueued before is consumed.

A call that fails is counted in the phase's ``errors`` by status code; a failed unary call is
followed by the next, a failed stream ends that stream.

The queue is deleted at the end. Run it beside ``doq bench http`` on the same cluster to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from doq.grpc import doq_pb2 as pb
from doq.grpc import doq_pb2_grpc as pb_grpc

MESSAGE_CONTENT = "x" * 100
STREAM_WINDOW = 32  # requests one EnqueueStream has written ahead of the answers it read
STREAMS_DEFAULT = 16
SECONDS_DEFAULT = 10.0
CALL_TIMEOUT_S = 30.0


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies_s: list[float] = []
        self.elapsed_s = 0.0
        self.errors: dict[str, int] = {}  # status code name: calls that ended with it

    def failed(self, error: grpc.aio.AioRpcError) -> None:
        name = error.code().name
        self.errors[name] = self.errors.get(name, 0) + 1

    def report(self) -> dict[str, Any]:
        done = sorted(self.latencies_s)
        return {
            "phase": self.name,
            "messages": len(done),
            "messages_per_s": round(len(done) / self.elapsed_s) if self.elapsed_s else 0,
            "p50_ms": _percentile_ms(done, 0.5),
            "p99_ms": _percentile_ms(done, 0.99),
            "errors": dict(self.errors),
        }


def _percentile_ms(done: list[float], fraction: float) -> float | None:
    if not done:
        return None
    return round(done[min(len(done) - 1, int(len(done) * fraction))] * 1000, 2)


async def _timed(phase: Phase, workers: Sequence[Callable[[], Awaitable[None]]]) -> Phase:
    """Run the workers; a call that fails (a leader lost on a busy machine) is counted in
    ``errors`` and ends that worker's call or stream, not the benchmark."""

    async def counted(worker: Callable[[], Awaitable[None]]) -> None:
        try:
            await worker()
        except grpc.aio.AioRpcError as error:
            phase.failed(error)

    started = time.monotonic()
    await asyncio.gather(*(counted(worker) for worker in workers))
    phase.elapsed_s = time.monotonic() - started
    return phase


async def unary_enqueue(stub: Any, queue: str, streams: int, seconds: float) -> Phase:
    phase = Phase("unary_enqueue")
    ends_at = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < ends_at:
            started = time.perf_counter()
            try:
                await stub.Enqueue(
                    pb.EnqueueRequest(queueName=queue, content=MESSAGE_CONTENT),
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as error:
                phase.failed(error)
                continue
            phase.latencies_s.append(time.perf_counter() - started)

    return await _timed(phase, [caller] * streams)


async def stream_enqueue(stub: Any, queue: str, streams: int, seconds: float) -> Phase:
    phase = Phase("stream_enqueue")
    ends_at = time.monotonic() + seconds

    async def one_stream() -> None:
        sent: asyncio.Queue[float] = asyncio.Queue(STREAM_WINDOW)
        call = stub.EnqueueStream(timeout=seconds + CALL_TIMEOUT_S)

        async def writer() -> None:
            while time.monotonic() < ends_at:
                await sent.put(time.perf_counter())
                await call.write(pb.EnqueueRequest(queueName=queue, content=MESSAGE_CONTENT))
            await call.done_writing()

        writing = asyncio.ensure_future(writer())
        async for _answer in call:
            phase.latencies_s.append(time.perf_counter() - sent.get_nowait())
        await writing

    return await _timed(phase, [one_stream] * streams)


async def dequeue_stream_ack(
    stub: Any, queue: str, streams: int, seconds: float, total: int
) -> Phase:
    phase = Phase("dequeue_stream_ack")
    ends_at = time.monotonic() + seconds
    left = [total]

    async def one_stream() -> None:
        asks: asyncio.Queue[pb.DequeueRequest | None] = asyncio.Queue()

        async def requests() -> AsyncIterator[pb.DequeueRequest]:
            while (ask := await asks.get()) is not None:
                yield ask

        call = stub.DequeueStream(requests(), timeout=seconds + CALL_TIMEOUT_S)
        while time.monotonic() < ends_at and left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            await asks.put(pb.DequeueRequest(queueName=queue, ack=False))
            message = await call.read()
            await stub.Ack(pb.AckRequest(queueName=queue, id=message.id), timeout=CALL_TIMEOUT_S)
            phase.latencies_s.append(time.perf_counter() - started)
        await asks.put(None)
        call.cancel()

    return await _timed(phase, [one_stream] * streams)


async def run(address: str, streams: int, seconds: float) -> list[dict[str, Any]]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.DOQStub(channel)
        await stub.CreateQueue(pb.CreateQueueRequest(name=queue, type="delayed"), timeout=30)
        try:
            phases = [
                await unary_enqueue(stub, queue, streams, seconds),
                await stream_enqueue(stub, queue, streams, seconds),
            ]
            total = sum(len(p.latencies_s) for p in phases)
            phases.append(await dequeue_stream_ack(stub, queue, streams, seconds, total))
        finally:
            await stub.DeleteQueue(pb.DeleteQueueRequest(name=queue), timeout=30)
    return [phase.report() for phase in phases]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doq bench grpc", description=__doc__)
    parser.add_argument("--address", required=True, help="a node's --grpc.address")
    parser.add_argument("--streams", type=int, default=STREAMS_DEFAULT)
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT, help="per phase")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    reports = asyncio.run(run(args.address, args.streams, args.seconds))
    for report in reports:
        print(
            f"{report['phase']:>20}: {report['messages_per_s']:>7} messages/s  "
            f"p50 {report['p50_ms']} ms  p99 {report['p99_ms']} ms  ({report['messages']}, "
            f"errors {report['errors'] or 0})"
        )
    if args.json:
        print(json.dumps({"streams": args.streams, "seconds": args.seconds, "phases": reports}))
    return 0
