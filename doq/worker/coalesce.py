"""The worker's coalescer: the acks, nacks and touches of finished handlers gathered into batch
requests (or stream bundles), so that a worker does not pay one request per message.

One request per message held the worker to 0.04 of raw consumption (docs/benchmarks.md, "The
worker runtime"): the server turns a batch of 1,000 acks into one replicated command, but 1,000
single acks into 1,000 HTTP requests. A settlement handed to ``submit`` waits at most
``delay_s`` (or until ``batch_max`` of them are waiting) and goes with the others of its verb in
one ``settle_many`` (doq/client/calls.py, or a stream's: doq/client/stream.py); each one's own
result comes back to ``on_result``, so a stale receipt fails that message alone.

``submit`` returns once the settlement is queued (the runner is free for the next message);
``close`` sends what is waiting and returns when every result is in: a worker that stops calls it
last, so no finished handler's outcome is lost to a shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from doq.client.calls import BATCH_ITEMS_MAX
from doq.client.models import SETTLE_VERBS, ItemResult, Settlement

log = logging.getLogger("doq.worker")

FLUSH_DELAY_S_DEFAULT = 0.002  # a settlement waits this long for others before it is sent
FLUSHES_IN_FLIGHT_MAX = 4  # batch requests awaiting their answers at once
PENDING_BATCHES_MAX = 4  # submit waits while this many full batches are waiting

SettleMany = Callable[[str, list[Settlement]], Awaitable[list[ItemResult]]]  # (verb, batch)
OnResult = Callable[[Settlement, ItemResult | None, BaseException | None], None]


class Coalescer:
    """``async with Coalescer(settle, on_result) as c: await c.submit(settlement)``: the
    context runs the flushing task; leaving it (or ``close``) sends the rest and waits for it."""

    def __init__(
        self,
        settle_many: SettleMany,
        on_result: OnResult,
        *,
        batch_max: int = BATCH_ITEMS_MAX,
        delay_s: float = FLUSH_DELAY_S_DEFAULT,
    ) -> None:
        if not 1 <= batch_max <= BATCH_ITEMS_MAX:
            raise ValueError(f"batch_max must be 1..{BATCH_ITEMS_MAX}")
        self._settle_many = settle_many
        self._on_result = on_result
        self._batch_max = batch_max
        self._delay_s = delay_s
        self._pending: dict[str, list[Settlement]] = {verb: [] for verb in SETTLE_VERBS}
        self._waiting = 0
        self._arrived = anyio.Event()
        self._full = anyio.Event()
        self._room = anyio.Event()
        self._closed = False
        self._flushes = anyio.Semaphore(FLUSHES_IN_FLIGHT_MAX)
        self.requests = 0  # batch requests sent: settlements / requests is the mean batch

    async def __aenter__(self) -> Coalescer:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._run)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        self.close()
        return await self._group.__aexit__(*exc_info)

    @property
    def waiting(self) -> int:
        return self._waiting

    async def submit(self, settlement: Settlement) -> None:
        """Queue ``settlement``; waits only while too many are waiting already."""
        while self._waiting >= self._batch_max * PENDING_BATCHES_MAX and not self._closed:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()
        if self._closed:
            raise RuntimeError("the coalescer is closed")
        self._pending[settlement.verb].append(settlement)
        self._waiting += 1
        self._arrived.set()
        if len(self._pending[settlement.verb]) >= self._batch_max:
            self._full.set()

    def flush_soon(self) -> None:
        """Send what is waiting without waiting out the delay (nothing else is coming soon)."""
        if self._waiting:
            self._full.set()

    def close(self) -> None:
        """Take no more; what is waiting is sent at once."""
        self._closed = True
        self._arrived.set()
        self._full.set()
        self._room.set()

    async def _run(self) -> None:
        async with anyio.create_task_group() as flushes:
            while True:
                await self._arrived.wait()
                if not self._closed:
                    with anyio.move_on_after(self._delay_s):
                        await self._full.wait()
                self._arrived = anyio.Event()
                self._full = anyio.Event()
                for verb, batch in self._take():
                    await self._flushes.acquire()
                    flushes.start_soon(self._flush, verb, batch)
                if self._closed and self._waiting == 0:
                    return

    def _take(self) -> list[tuple[str, list[Settlement]]]:
        batches = []
        for verb, pending in self._pending.items():
            while pending:
                batch, pending[:] = pending[: self._batch_max], pending[self._batch_max :]
                batches.append((verb, batch))
                self._waiting -= len(batch)
        self._room.set()
        return batches

    async def _flush(self, verb: str, batch: list[Settlement]) -> None:
        try:
            self.requests += 1
            try:
                results = await self._settle_many(verb, batch)
            except Exception as exc:  # the client retried already: each one's outcome is lost
                log.warning("a batch %s of %d failed: %s", verb, len(batch), exc)
                for settlement in batch:
                    self._on_result(settlement, None, exc)
                return
            for settlement, result in zip(batch, results, strict=True):
                self._on_result(settlement, result, None)
        finally:
            self._flushes.release()
