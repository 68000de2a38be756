"""``doq bench worker``: messages per second through the worker runtime with a no-op handler,
against the same messages consumed raw in the same run; the difference is the runtime's overhead
(docs/client.md, "Benchmark").

    doq bench worker [--url URL ...] [--messages N] [--concurrency C] [--batch B] [--json]

Each of four phases starts from a queue holding N 100-byte messages, filled with batch
enqueues; the queue is deleted at the end:

1. raw long polls: B messages a batch dequeue, acked in one batch ack;
2. raw stream: one WebSocket granting credit 256 and acking each delivery in one bundle
   (``doq bench stream``'s consumer, doq/bench/stream.py), on the leader;
3. the worker on the stream (its default) with ``--prefetch`` (default 256, the raw phase's
   credit, so that both keep as many messages in the pipe): each handler's ack handed to the
   coalescer, which sends the acks waiting in one bundle;
4. the worker on long polls (``stream=False``): the coalescer's acks as batch ack requests.

``worker_vs_raw`` is phase 3 against phase 2, ``worker_poll_vs_raw`` phase 4 against phase 1.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio

from doq.bench.stream import CREDIT_DEFAULT, stream_consume
from doq.client import AsyncClient
from doq.worker import Job, Worker, WorkerSettings

CONTENT = "x" * 100
FILL_BATCH = 1000
STREAM_SECONDS_MAX = 600.0  # the raw stream phase ends when the queue is drained, or then


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="doq bench worker", description=__doc__.split("\n")[0])
    p.add_argument("--url", action="append", help="a node's URL (repeatable; DOQ_SERVERS)")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--batch", type=int, default=100, help="the raw phase's batch size")
    p.add_argument(
        "--prefetch",
        type=int,
        default=CREDIT_DEFAULT,
        help="the worker's prefetch on the stream (default: the raw stream's credit)",
    )
    p.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    report = anyio.run(_bench, args, backend="trio")
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"raw stream      {report['raw_stream_messages_per_s']:9.0f} msg/s  "
            f"(credit {CREDIT_DEFAULT})\n"
            f"worker stream   {report['worker_messages_per_s']:9.0f} msg/s  (concurrency "
            f"{args.concurrency}, prefetch {args.prefetch}, no-op handler): "
            f"{report['worker_vs_raw']:.2f} of raw\n"
            f"raw long poll   {report['raw_messages_per_s']:9.0f} msg/s  (batch {args.batch})\n"
            f"worker long poll{report['worker_poll_messages_per_s']:9.0f} msg/s: "
            f"{report['worker_poll_vs_raw']:.2f} of raw"
        )
    return 0


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"bench-worker-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(args.url) as client:
        await client.create_queue(queue, ack_timeout=600)
        try:
            await _fill(client, queue, args.messages)
            raw_s = await _raw(client, queue, args.messages, args.batch)
            await _fill(client, queue, args.messages)
            raw_stream_rate = await _raw_stream(client, queue)
            await _fill(client, queue, args.messages)
            worker_s = await _through_worker(client, queue, args, stream=True)
            await _fill(client, queue, args.messages)
            poll_s = await _through_worker(client, queue, args, stream=False)
        finally:
            await client.delete_queue(queue)
    raw_rate, worker_rate = args.messages / raw_s, args.messages / worker_s
    poll_rate = args.messages / poll_s
    return {
        "messages": args.messages,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "prefetch": args.prefetch,
        "raw_messages_per_s": raw_rate,
        "raw_stream_messages_per_s": raw_stream_rate,
        "worker_messages_per_s": worker_rate,
        "worker_poll_messages_per_s": poll_rate,
        "worker_vs_raw": worker_rate / raw_stream_rate,
        "worker_poll_vs_raw": poll_rate / raw_rate,
    }


async def _fill(client: AsyncClient, queue: str, count: int) -> None:
    for start in range(0, count, FILL_BATCH):
        await client.enqueue_many(queue, [CONTENT] * min(FILL_BATCH, count - start))


async def _raw(client: AsyncClient, queue: str, count: int, batch: int) -> float:
    started = time.perf_counter()
    taken = 0
    while taken < count:
        messages = await client.dequeue_many(queue, batch, wait=1)
        if messages:
            await client.ack_many(queue, messages)
        taken += len(messages)
    return time.perf_counter() - started


async def _raw_stream(client: AsyncClient, queue: str) -> float:
    """Messages/s of ``doq bench stream``'s consumer, on the leader, until the queue is drained."""
    leaders = [s.http_addr for s in await client.servers() if s.is_leader and s.http_addr]
    if not leaders:
        raise SystemExit("no leader to stream from")
    where = urlsplit(f"http://{leaders[0]}")
    host, port = where.hostname or "127.0.0.1", where.port or 80
    return await stream_consume(host, port, queue, STREAM_SECONDS_MAX, CREDIT_DEFAULT)


async def _through_worker(
    client: AsyncClient, queue: str, args: argparse.Namespace, *, stream: bool
) -> float:
    async def noop(job: Job) -> None:
        return None

    count = args.messages
    settings = WorkerSettings(
        queue,
        concurrency=args.concurrency,
        poll_wait_s=1,
        stream=stream,
        prefetch=max(args.prefetch, args.concurrency) if stream else None,
    )
    worker = Worker(client, noop, settings)
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        while worker.stats.done < count:
            await anyio.sleep(0.01)
        elapsed = time.perf_counter() - started
        worker.stop()
    return elapsed
