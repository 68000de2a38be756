"""The worker runtime in-process against a real one-node doq: success acks, failures retry with
backoff and then park with the error, heartbeats keep a slow handler's message, concurrency is
honoured, and a stop with a handler past the grace period gives its message back."""

from __future__ import annotations

import threading
import time

import trio

from doq.client import AsyncClient, Client, QueueEmpty
from doq.worker import Job, RetryPolicy, Worker, WorkerSettings
from doq.worker.policy import ATTEMPTS_KEY, ERROR_KEY, SOURCE_ID_KEY, SOURCE_QUEUE_KEY

DEADLINE_S = 20


async def _until(predicate, what: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while not predicate():
            await trio.sleep(0.01)


async def _run(node, handler, settings: WorkerSettings, done) -> Worker:
    async with AsyncClient(node.url) as client:
        worker = Worker(client, handler, settings)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run)
            await _until(lambda: done(worker), "the worker")
            worker.stop()
    return worker


async def test_a_successful_handler_acks_every_message(node):
    with Client(node.url) as c:
        c.create_queue("w-ok")
        c.enqueue_many("w-ok", [str(i) for i in range(20)])
    seen: list[str] = []
    worker = await _run(
        node,
        lambda job: seen.append(job.content),
        WorkerSettings("w-ok", concurrency=4, poll_wait_s=0.2),
        lambda w: w.stats.done == 20,
    )
    assert sorted(seen, key=int) == [str(i) for i in range(20)]
    assert worker.stats.failed == 0
    with Client(node.url) as c:
        assert c.queue("w-ok").total == 0


async def test_a_failing_handler_is_retried_with_backoff_then_parked_with_its_error(node):
    with Client(node.url) as c:
        c.create_queue("w-fail")
        sent = c.enqueue("w-fail", "boom", metadata={"k": "v"})
    attempts: list[int] = []

    async def handler(job: Job) -> None:
        attempts.append(job.attempt)
        raise RuntimeError(f"attempt {job.attempt} failed")

    settings = WorkerSettings(
        "w-fail", concurrency=2, poll_wait_s=0.2, retry=RetryPolicy(3, backoff_s_first=0.0)
    )
    worker = await _run(node, handler, settings, lambda w: w.stats.parked == 1)
    assert attempts == [1, 2, 3] and worker.stats.failed == 3
    with Client(node.url) as c:
        assert c.queue("w-fail").total == 0
        parked = c.get_message("w-fail.dead", sent.id)
    assert parked.content == "boom" and parked.metadata["k"] == "v"
    assert parked.metadata[ATTEMPTS_KEY] == "3"
    assert parked.metadata[ERROR_KEY] == "RuntimeError: attempt 3 failed"
    assert parked.metadata[SOURCE_QUEUE_KEY] == "w-fail"
    assert parked.metadata[SOURCE_ID_KEY] == str(sent.id)


async def test_a_retry_waits_its_backoff_on_a_delayed_queue(node):
    with Client(node.url) as c:
        c.create_queue("w-backoff")
        sent = c.enqueue("w-backoff", "x")
    failed = trio.Event()

    def handler(job: Job) -> None:
        failed.set()
        raise ValueError("no")

    settings = WorkerSettings("w-backoff", poll_wait_s=0.2, retry=RetryPolicy(5, 3600.0, 3600.0))
    await _run(node, handler, settings, lambda w: w.stats.failed == 1)
    with Client(node.url) as c:
        back = c.get_message("w-backoff", sent.id)
        assert back.metadata == {ATTEMPTS_KEY: "1"}
        assert back.priority >= time.time() + 3500  # a Unix second about an hour on
        try:
            c.dequeue("w-backoff")
        except QueueEmpty:
            pass
        else:
            raise AssertionError("a message nacked with an hour's backoff was ready at once")


async def test_heartbeats_keep_a_slow_handlers_message_past_its_ack_timeout(node):
    with Client(node.url) as c:
        c.create_queue("w-slow", ack_timeout=1)
        c.enqueue("w-slow", "long job")
    calls: list[int] = []

    async def handler(job: Job) -> None:
        calls.append(job.id)
        await trio.sleep(2.5)  # the job: two and a half ack timeouts long

    settings = WorkerSettings("w-slow", concurrency=2, poll_wait_s=0.2, heartbeat_fraction=0.3)
    worker = await _run(node, handler, settings, lambda w: w.stats.done == 1)
    assert len(calls) == 1, "the message was delivered again while its handler ran"
    assert worker.stats.heartbeats >= 2 and worker.stats.lease_lost == 0


async def test_concurrency_is_honoured(node):
    with Client(node.url) as c:
        c.create_queue("w-conc")
        c.enqueue_many("w-conc", [str(i) for i in range(12)])
    lock = threading.Lock()
    running = [0]
    peak = [0]
    release = threading.Event()

    def handler(job: Job) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1

    settings = WorkerSettings("w-conc", concurrency=3, poll_wait_s=0.2)

    def done(worker: Worker) -> bool:
        if peak[0] >= 3:
            release.set()
        return worker.stats.done == 12

    await _run(node, handler, settings, done)
    assert peak[0] == 3


async def test_a_handler_still_running_when_the_grace_period_ends_gives_its_message_back(node):
    with Client(node.url) as c:
        c.create_queue("w-grace", ack_timeout=600)
        sent = c.enqueue("w-grace", "x")
    started = trio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await trio.sleep_forever()

    async with AsyncClient(node.url) as client:
        worker = Worker(client, handler, WorkerSettings("w-grace", poll_wait_s=0.2, grace_s=0.2))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run)
            await started.wait()
            worker.stop()
    assert worker.stats.abandoned == 1
    with Client(node.url) as c:
        again = c.dequeue("w-grace", ack=True)  # ready at once, not after its 600 s deadline
    assert again.id == sent.id
