"""The worker end to end on a real 3-node cluster (node processes started and stopped by PID):
it consumes from the leader's stream, acks through the coalescer, parks what always fails, and
goes on when leadership moves mid-run (the stream's 503 names the new leader; the consumer
reconnects there). Every message is handled, the queue ends empty, and the failures are parked."""

from __future__ import annotations

import pytest
import trio

from doq.client import AsyncClient
from doq.worker import Job, RetryPolicy, Worker, WorkerSettings

from ..e2e.cluster import ProcessCluster

pytestmark = pytest.mark.slow

MESSAGES = 300
FAILING_EVERY = 50  # contents divisible by this always fail, so they are parked
DEADLINE_S = 120


@pytest.fixture
def cluster(tmp_path):
    c = ProcessCluster(str(tmp_path))
    try:
        c.start()
        yield c
    finally:
        c.stop()


async def _leader_id(client: AsyncClient) -> str | None:
    return next((s.id for s in await client.servers() if s.is_leader), None)


async def test_the_worker_handles_every_message_across_a_leadership_transfer(cluster):
    urls = [n.url for n in cluster.nodes]
    handled: set[int] = set()

    async def handler(job: Job) -> None:
        if int(job.content) % FAILING_EVERY == 0:
            raise ValueError(f"{job.content} never works")
        handled.add(int(job.content))
        await trio.sleep(0.002)

    async with AsyncClient(urls) as client:
        await client.create_queue("wc", ack_timeout=60)
        for start in range(0, MESSAGES, 100):
            await client.enqueue_many("wc", [str(i) for i in range(start, start + 100)])
        settings = WorkerSettings(
            "wc", concurrency=8, retry=RetryPolicy(2, backoff_s_first=0.0), poll_wait_s=0.5
        )
        worker = Worker(client, handler, settings)
        with trio.fail_after(DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker.run)
                while len(handled) < MESSAGES // 3:
                    await trio.sleep(0.01)
                before = await _leader_id(client)
                target = next(n.id for n in cluster.nodes if n.id != before)
                await client.transfer(target)
                while await _leader_id(client) != target:
                    await trio.sleep(0.05)
                failing = MESSAGES // FAILING_EVERY
                while len(handled) < MESSAGES - failing or worker.stats.parked < failing:
                    await trio.sleep(0.01)
                stream = worker._stream
                worker.stop()
        assert worker.streaming and stream is not None and stream.reconnects >= 1
        assert handled == {i for i in range(MESSAGES) if i % FAILING_EVERY}
        info = await client.queue("wc")
        assert (info.ready, info.unacked) == (0, 0)
        dead = await client.queue("wc.dead")
        assert dead.ready == MESSAGES // FAILING_EVERY
