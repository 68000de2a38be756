"""``doq bench worker``: messages per second through the worker runtime with a no-op handler,
against the same messages consumed raw (batch dequeue plus batch ack) in the same run; the
difference is the runtime's overhead (docs/client.md, "Benchmark").

    doq bench worker [--url URL ...] [--messages N] [--concurrency C] [--batch B] [--json]

Both phases start from a queue holding N 100-byte messages, filled with batch enqueues; the
queue is deleted at the end. The raw phase takes B at a time and acks them in one request; the
worker's fetcher takes as many as it has idle handlers (at most C) and acks each message alone,
as it must (each handler finishes on its own).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import anyio

from doq.client import AsyncClient
from doq.worker import Job, Worker, WorkerSettings

CONTENT = "x" * 100
FILL_BATCH = 1000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="doq bench worker", description=__doc__.split("\n")[0])
    p.add_argument("--url", action="append", help="a node's URL (repeatable; DOQ_SERVERS)")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--batch", type=int, default=100, help="the raw phase's batch size")
    p.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    report = anyio.run(_bench, args, backend="trio")
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"raw    {report['raw_messages_per_s']:9.0f} msg/s  (batch {args.batch})\n"
            f"worker {report['worker_messages_per_s']:9.0f} msg/s  (concurrency "
            f"{args.concurrency}, no-op handler): {report['worker_vs_raw']:.2f} of raw"
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
            worker_s = await _through_worker(client, queue, args.messages, args.concurrency)
        finally:
            await client.delete_queue(queue)
    raw_rate, worker_rate = args.messages / raw_s, args.messages / worker_s
    return {
        "messages": args.messages,
        "concurrency": args.concurrency,
        "batch": args.batch,
        "raw_messages_per_s": raw_rate,
        "worker_messages_per_s": worker_rate,
        "worker_vs_raw": worker_rate / raw_rate,
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


async def _through_worker(client: AsyncClient, queue: str, count: int, concurrency: int) -> float:
    async def noop(job: Job) -> None:
        return None

    worker = Worker(client, noop, WorkerSettings(queue, concurrency=concurrency, poll_wait_s=1))
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        while worker.stats.done < count:
            await anyio.sleep(0.01)
        elapsed = time.perf_counter() - started
        worker.stop()
    return elapsed
