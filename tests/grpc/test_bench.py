"""``doq bench grpc`` runs its three phases against a real node and reports what it moved."""

from __future__ import annotations

import asyncio

import trio

from doq.bench import grpc as bench
from doq.server import DoqNode

from .support import node_settings, ready


async def test_the_grpc_benchmark_moves_messages_in_each_phase(tmp_path):
    settings = node_settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await ready(settings)
        try:
            reports = await trio.to_thread.run_sync(
                asyncio.run, bench.run(settings.grpc__address, 2, 0.5)
            )
        finally:
            node.stop()
    by_phase = {report["phase"]: report for report in reports}
    assert list(by_phase) == ["unary_enqueue", "stream_enqueue", "dequeue_stream_ack"]
    enqueued = by_phase["unary_enqueue"]["messages"] + by_phase["stream_enqueue"]["messages"]
    assert enqueued > 0 and all(r["messages_per_s"] > 0 for r in reports)
    assert 0 < by_phase["dequeue_stream_ack"]["messages"] <= enqueued
