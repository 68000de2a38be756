"""The worker runtime: runs a handler on every message of a queue (docs/client.md, "Worker").

``concurrency`` runners take messages from one fetcher, which takes as many as there are idle
runners (so a worker never holds a message it cannot start): from the queue's WebSocket stream
with ``concurrency`` as its credit where the server has one (doq/client/stream.py), else by long
polls. A sync handler runs in a thread (at most ``concurrency`` at once), an async one in the
event loop. Success acks; an exception nacks with exponential backoff as a future priority (on a
delayed queue), and after ``attempts_max`` failures the message is parked in the dead queue with
the error in its metadata (doq/worker/policy.py). While a handler runs past
``heartbeat_fraction`` of the queue's ack timeout, the message is touched, so a long job is never
redelivered while it is alive. Acks, nacks and touches go through the coalescer
(doq/worker/coalesce.py): many to a request or a bundle, each with its own result.

``stop()`` (the first SIGTERM or SIGINT): take no more; what is in hand finishes within
``grace_s``, and what does not is nacked (priority kept); the coalescer sends every outcome
before ``run`` returns. Runs under Trio or asyncio (anyio).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs

from doq.client import AsyncClient, ItemResult, Message, QueueNotFound
from doq.client.calls import delay_priority
from doq.client.models import Settlement
from doq.client.stream import StreamConsumer
from doq.worker import policy
from doq.worker.coalesce import FLUSH_DELAY_S_DEFAULT, Coalescer
from doq.worker.stats import WorkerStats

log = logging.getLogger("doq.worker")

Handler = Callable[["Job"], Any] | Callable[["Job"], Awaitable[Any]]
HEARTBEAT_CHECKS_PER_INTERVAL = 4
POLL_WAIT_S_DEFAULT = 5.0  # a long poll's wait: also how long a stop waits for the one in progress


@attrs.frozen
class Job:
    """What a handler gets: the message and how many times it failed before (``attempt`` 1 is
    the first try)."""

    queue: str
    id: int
    content: str
    priority: int
    group: str
    metadata: dict[str, str]
    attempt: int

    @classmethod
    def of(cls, queue: str, message: Message) -> Job:
        metadata = dict(message.metadata or {})
        attempt = policy.attempts_of(metadata) + 1
        return cls(
            queue, message.id, message.content, message.priority, message.group, metadata, attempt
        )


@attrs.define
class _Running:
    """A handler running now: its message, its cancel scope (for the end of the grace period)
    and when its message was delivered or last touched (for heartbeats)."""

    message: Message
    scope: anyio.CancelScope
    touched: float


@attrs.frozen
class WorkerSettings:
    queue: str
    concurrency: int = 16
    retry: policy.RetryPolicy = attrs.field(factory=policy.RetryPolicy)
    dead_queue: str | None = None  # None: "<queue>.dead"
    heartbeat_fraction: float = 0.5
    grace_s: float = 30.0
    poll_wait_s: float = POLL_WAIT_S_DEFAULT
    stream: bool = True  # the WebSocket stream where the server has it; False: long polls
    # On the stream: messages delivered and not yet settled, at most (its credit). None: the
    # concurrency, so no message waits unstarted; more keeps the pipe full between round trips.
    prefetch: int | None = None
    settle_delay_s: float = FLUSH_DELAY_S_DEFAULT  # an ack waits this long for others to share

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise ValueError("concurrency must be 1..1000")
        if not 0 < self.heartbeat_fraction < 1:
            raise ValueError("heartbeat_fraction must be between 0 and 1")
        if self.prefetch is not None and self.prefetch < self.concurrency:
            raise ValueError("prefetch must be at least the concurrency")

    @property
    def credit(self) -> int:
        return self.prefetch or self.concurrency

    @property
    def dead(self) -> str:
        return self.dead_queue or policy.dead_queue_for(self.queue)


class Worker:
    def __init__(self, client: AsyncClient, handler: Handler, settings: WorkerSettings) -> None:
        self.client = client
        self.handler = handler
        self.settings = settings
        self.stats = WorkerStats()
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - an instance with async __call__
        )
        self._limiter = anyio.CapacityLimiter(settings.concurrency)
        self._stopping = anyio.Event()
        self._slots = anyio.Semaphore(settings.concurrency)  # a runner free for one more message
        self._waiting: anyio.CancelScope | None = None
        self._delayed = True
        self._ack_timeout_s = 1800.0
        self._stream: StreamConsumer | None = None
        self._coalescer: Coalescer | None = None
        self._running: dict[int, _Running] = {}  # by message ID: the handlers running now
        self._unstarted = 0  # messages taken and not yet started by a runner

    def stop(self) -> None:
        """Take no more messages; finish (or nack) those in hand within the grace period."""
        if not self._stopping.is_set():
            log.info("stopping: finishing the messages in hand", extra={"in_hand": self.in_hand})
            self._stopping.set()
            if self._waiting is not None:
                self._waiting.cancel()

    @property
    def in_hand(self) -> int:
        return self.settings.concurrency - self._slots.value

    @property
    def streaming(self) -> bool:
        """Whether messages come from the WebSocket stream (else from long polls)."""
        return self._stream is not None

    async def run(self) -> None:
        """Until ``stop()`` and the messages in hand are done and settled."""
        queue = await self.client.queue(self.settings.queue)
        self._delayed = queue.type == "delayed"
        self._ack_timeout_s = float(queue.settings.ack_timeout)
        if self.settings.stream:
            self._stream = await self.client.open_stream(self.settings.queue, self.settings.credit)
        log.info(
            "worker started",
            extra={
                "queue": self.settings.queue,
                "concurrency": self.settings.concurrency,
                "stream": self.streaming,
            },
        )
        try:
            await self._run_with_coalescer()
        finally:
            if self._stream is not None:
                await self._stream.aclose()
        log.info("worker stopped", extra=self.stats.as_dict())

    async def _run_with_coalescer(self) -> None:
        settle = self._stream.settle_many if self._stream is not None else self._settle_over_http
        coalescer = Coalescer(settle, self._settled, delay_s=self.settings.settle_delay_s)
        async with coalescer:
            self._coalescer = coalescer
            send, receive = anyio.create_memory_object_stream[Message](0)
            async with anyio.create_task_group() as watchers:
                watchers.start_soon(self._heartbeats)
                watchers.start_soon(self._stop_after_grace)
                async with anyio.create_task_group() as runners:
                    for _ in range(self.settings.concurrency):
                        runners.start_soon(self._runner, receive.clone())
                    receive.close()
                    async with send:
                        await self._fetch(send)
                    if self._stream is not None:  # nothing more pushed to us; the rest by HTTP
                        await self._stream.aclose()
                watchers.cancel_scope.cancel()
        self.stats.settle_requests = coalescer.requests

    async def _settle_over_http(self, verb: str, batch: list[Settlement]) -> list[ItemResult]:
        return await self.client.settle_many(self.settings.queue, verb, batch)  # type: ignore[no-any-return]

    async def _fetch(self, send: Any) -> None:
        while not self._stopping.is_set():
            want = await self._free_slots()
            if want == 0:
                return
            try:
                batch = await self._take(want)
            except Exception as exc:  # the client has retried already: go on after a pause
                log.warning("taking messages failed: %s", exc)
                batch = []
                with anyio.move_on_after(1.0):
                    await self._stopping.wait()
            for _ in range(want - len(batch)):
                self._slots.release()
            self._unstarted += len(batch)
            for i, message in enumerate(batch):
                if self._stopping.is_set():  # taken during the last wait: back it goes
                    for _ in batch[i:]:
                        self._slots.release()
                    self._unstarted -= len(batch) - i
                    await self._give_back(batch[i:])
                    return
                await send.send(message)

    async def _take(self, want: int) -> list[Message]:
        """Up to ``want`` messages (none when stopped meanwhile)."""
        taken: list[Message] = []
        with anyio.CancelScope() as waiting:
            self._waiting = waiting
            try:
                if self._stopping.is_set():
                    return []
                if self._stream is not None:
                    taken = await self._stream.receive(want)
                else:
                    taken = await self.client.dequeue_many(
                        self.settings.queue, want, wait=self.settings.poll_wait_s
                    )
            finally:
                self._waiting = None
        return taken

    async def _free_slots(self) -> int:
        """Waits for a free runner; then takes every free one (0 once stopping)."""
        with anyio.CancelScope() as waiting:
            self._waiting = waiting
            await self._slots.acquire()
        self._waiting = None
        if waiting.cancelled_caught:
            return 0
        if self._stopping.is_set():
            self._slots.release()
            return 0
        taken = 1
        while taken < self.settings.concurrency:
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                break
            taken += 1
        return taken

    async def _give_back(self, messages: list[Message]) -> None:
        for message in messages:
            await self._nack(message, priority=0, metadata=None)

    async def _runner(self, receive: Any) -> None:
        async with receive:
            async for message in receive:
                try:
                    await self._process(message)
                finally:
                    self._slots.release()

    async def _process(self, message: Message) -> None:
        self._unstarted -= 1
        job = Job.of(self.settings.queue, message)
        started = time.monotonic()
        error: BaseException | None = None
        with anyio.CancelScope() as scope:
            self._running[message.id] = _Running(message, scope, started)
            try:
                await self._call(job)
            except Exception as exc:  # any failure of the handler
                error = exc
            finally:
                del self._running[message.id]
        elapsed = time.monotonic() - started
        if scope.cancelled_caught:  # the grace period ended with the handler still running
            await self._nack(message, priority=0, metadata=None)
            self.stats.abandoned += 1
        elif error is None:
            await self._submit(Settlement("ack", message))
            self.stats.succeeded(elapsed)
        else:
            await self._failed(message, job, error)
            self.stats.failed_after(elapsed)
        if self._idle():  # no other outcome is coming soon: send what waits now
            self._coalescer_now().flush_soon()

    def _idle(self) -> bool:
        """No handler running and no message on hand to start."""
        buffered = self._stream.buffered if self._stream is not None else 0
        return not self._running and not self._unstarted and not buffered

    async def _call(self, job: Job) -> None:
        if self._is_async:
            await self.handler(job)  # type: ignore[misc]
        else:
            await anyio.to_thread.run_sync(
                self.handler, job, limiter=self._limiter, abandon_on_cancel=True
            )

    async def _heartbeats(self) -> None:
        """Touches every message whose handler has run ``heartbeat_fraction`` of the ack
        timeout since its delivery or its last touch: one task for all, looking
        ``HEARTBEAT_CHECKS_PER_INTERVAL`` times an interval (so a touch comes at most a quarter
        interval late), not two tasks a message."""
        every_s = self._ack_timeout_s * self.settings.heartbeat_fraction
        while True:
            await anyio.sleep(every_s / HEARTBEAT_CHECKS_PER_INTERVAL)
            now = time.monotonic()
            for running in list(self._running.values()):
                if now - running.touched >= every_s and running.message.id in self._running:
                    running.touched = now
                    await self._submit(Settlement("touch", running.message))
                    self.stats.heartbeats += 1

    async def _stop_after_grace(self) -> None:
        await self._stopping.wait()
        await anyio.sleep(self.settings.grace_s)
        for running in list(self._running.values()):
            running.scope.cancel()

    async def _failed(self, message: Message, job: Job, error: BaseException) -> None:
        attempts = job.attempt
        text = f"{type(error).__name__}: {error}"
        retry = self.settings.retry
        if retry.exhausted(attempts):
            await self._park(message, attempts, text)
            return
        delay = retry.backoff_s(attempts)
        priority = delay_priority(delay) if self._delayed else 0
        log.warning(
            "handler failed; retrying",
            extra={"id": message.id, "attempt": attempts, "retry_in_s": delay, "error": text},
        )
        await self._nack(message, priority, policy.retry_metadata(message.metadata, attempts))

    async def _park(self, message: Message, attempts: int, error: str) -> None:
        dead = self.settings.dead
        metadata = policy.parked_metadata(
            message.metadata, attempts, error, self.settings.queue, message.id
        )
        try:
            await self._enqueue_dead(dead, message, metadata)
        except QueueNotFound:
            await self.client.create_queue(dead, "delayed")
            await self._enqueue_dead(dead, message, metadata)
        await self._submit(Settlement("ack", message))  # only once the parked copy is stored
        self.stats.parked += 1
        log.error(
            "parked after %d attempts",
            attempts,
            extra={"id": message.id, "dead_queue": dead, "error": error},
        )

    async def _enqueue_dead(self, dead: str, message: Message, metadata: dict[str, str]) -> None:
        # Under the message's own ID: parking again after a crash finds the first copy.
        await self.client.enqueue(
            dead, message.content, priority=0, group=message.group, metadata=metadata, id=message.id
        )

    async def _nack(self, message: Message, priority: int, metadata: dict[str, str] | None) -> None:
        await self._submit(Settlement("nack", message, priority, metadata))

    async def _submit(self, settlement: Settlement) -> None:
        await self._coalescer_now().submit(settlement)

    def _coalescer_now(self) -> Coalescer:
        assert self._coalescer is not None, "settlements are made while the worker runs"
        return self._coalescer

    def _settled(
        self, settlement: Settlement, result: ItemResult | None, error: BaseException | None
    ) -> None:
        """The outcome of one ack, nack or touch. A stale receipt or a message no longer in
        flight means its lease was over (it went back to the queue): the job's outcome could
        not be recorded, and it runs again. Any other failure: it comes back at its deadline."""
        log.debug("settled %s %s %s", settlement, result, error)
        if result is not None and result.error is None:
            return
        if settlement.verb == "touch" and settlement.message.id not in self._running:
            return  # the handler finished meanwhile and its ack or nack went first: no matter
        if result is not None and result.error is not None and result.error.status in (404, 409):
            self.stats.lease_lost += 1
            log.warning(
                "the message's lease was over",
                extra={"id": settlement.message.id, "verb": settlement.verb},
            )
            return
        self.stats.settle_failed += 1
        detail = error if error is not None else result.error if result is not None else None
        log.warning(
            "could not %s a message: %s",
            settlement.verb,
            detail,
            extra={"id": settlement.message.id},
        )
