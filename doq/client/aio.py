"""``AsyncClient``: the doq client for async code, under Trio and asyncio alike (anyio), with
the very surface of ``Client`` (doq/client/calls.py): every method returns an awaitable, and
``consume`` is an async iterator (docs/client.md, "Library").
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx

from doq.client.calls import (
    Call,
    Operations,
    Reply,
    Retry,
    ids_call,
    servers_call,
    settle,
)
from doq.client.consume import Delivery, consume_batch_size
from doq.client.errors import Unavailable
from doq.client.routing import (
    ATTEMPTS_MAX_DEFAULT,
    RETRY_S_MAX_DEFAULT,
    Router,
    backoff_s,
    servers_from_env,
)
from doq.client.stream import StreamConsumer, StreamUnsupported
from doq.client.sync import ID_POOL_SIZE, TIMEOUT_S_DEFAULT
from doq.protocol import GENERATE_IDS_MAX


class AsyncClient(Operations):
    """``async with AsyncClient(["http://h1:8001", ...]) as client: await client.enqueue(...)``."""

    def __init__(
        self,
        servers: str | Sequence[str] | None = None,
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        attempts_max: int = ATTEMPTS_MAX_DEFAULT,
        retry_s_max: float = RETRY_S_MAX_DEFAULT,
        rng: random.Random | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._router = Router(servers_from_env(servers))
        self._timeout_s = timeout_s
        self._attempts_max = attempts_max
        self._retry_s_max = retry_s_max
        self._rng = rng or random.Random()
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._ids: list[int] = []
        self._ids_lock: anyio.Lock | None = None  # made in the event loop that first needs it

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def leader_url(self) -> str | None:
        return self._router.leader

    async def _run(self, call: Call) -> Any:
        if call.ids_needed:
            call = call.with_ids(await self._take_ids(call.ids_needed))
        if call.to_leader and not self._router.discovered:
            await self._discover()
        started = anyio.current_time()
        unknown = False
        last = "no attempt"
        for attempt in range(self._attempts_max):
            url = self._router.pick(call.to_leader)
            try:
                response = await self._send(url, call)
            except httpx.TransportError as exc:
                self._router.failed(url)
                unknown = unknown or not isinstance(exc, httpx.ConnectError)
                last, retry_after = f"{url}: {exc!r}", None
            else:
                reply = Reply(response.status_code, response.headers, response.content)
                value = settle(call, reply, unknown)
                if not isinstance(value, Retry):
                    return value
                self._router.failed(url)
                unknown = True
                last, retry_after = f"{url}: {value.reason}", value.retry_after_s
            wait = backoff_s(attempt, self._rng, retry_after)
            if anyio.current_time() + wait - started > self._retry_s_max:
                break
            await anyio.sleep(wait)
        raise Unavailable(f"{call.method} {call.path} failed after retries (last: {last})", None)

    async def _send(self, url: str, call: Call) -> httpx.Response:
        return await self._http.request(
            call.method,
            url + call.path,
            params=call.params,
            json=call.body if call.files is None else None,
            files=call.files,
            timeout=self._timeout_s + call.wait_s,
        )

    async def _discover(self) -> None:
        self._router.discovered = True
        with contextlib.suppress(Unavailable):
            self._router.learn(await self._run(servers_call()))

    async def _take_ids(self, number: int) -> list[int]:
        if self._ids_lock is None:
            self._ids_lock = anyio.Lock()
        async with self._ids_lock:
            while len(self._ids) < number:
                want = min(GENERATE_IDS_MAX, max(ID_POOL_SIZE, number - len(self._ids)))
                self._ids.extend(await self._run(ids_call(want)))
            taken, self._ids = self._ids[:number], self._ids[number:]
            return taken

    async def consume(
        self, queue: str, *, prefetch: int = 64, wait: float = 20.0, stream: bool = True
    ) -> AsyncIterator[Delivery]:
        """``async for msg in client.consume(queue):`` as ``Client.consume``, on the WebSocket
        stream where the server has it (``prefetch``: the messages delivered and not yet acked
        or nacked, at most), by long polls otherwise (``wait``) or with ``stream=False``. Close
        the iterator (``contextlib.aclosing``) to give back at once what it holds."""
        if stream:
            consumer = await self.open_stream(queue, prefetch)
            if consumer is not None:
                try:
                    while True:
                        for message in await consumer.receive():
                            yield Delivery.of(consumer, queue, message)
                finally:
                    await consumer.aclose()
        count = consume_batch_size(prefetch)
        held: list[Any] = []
        try:
            while True:
                held = await self._next_batch(queue, count, wait)
                while held:
                    yield Delivery.of(self, queue, held.pop(0))
        finally:
            if held:  # runs when the iterator is closed (``aclose()``, or its finalizer)
                with anyio.CancelScope(shield=True):
                    await self.nack_many(queue, held)

    async def open_stream(self, queue: str, prefetch: int) -> StreamConsumer | None:
        """A consumer of ``queue`` on its WebSocket stream (doq/client/stream.py), or None when
        the server has no stream endpoint; ``aclose()`` it when done."""
        consumer = StreamConsumer(self, queue, prefetch)
        try:
            await consumer.open()
        except StreamUnsupported:
            return None
        return consumer

    async def _next_batch(self, queue: str, count: int, wait: float) -> list[Any]:
        """The long-polling consumer's source of messages."""
        return await self.dequeue_many(queue, count, wait=wait)  # type: ignore[no-any-return]
