"""``Client``: the blocking doq client on httpx (docs/client.md, "Library").

The endpoints are ``Operations`` (doq/client/calls.py); this module does their I/O: failover over
the nodes (doq/client/routing.py), bounded and jittered retries of connection errors and 503s, the
pool of IDs that makes enqueue retries idempotent, and the consumer iterator.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

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
from doq.protocol import GENERATE_IDS_MAX

TIMEOUT_S_DEFAULT = 10.0
ID_POOL_SIZE = 256  # IDs drawn per POST /API/v1/ids: one round trip per 256 enqueues


class Client(Operations):
    """A doq client for one or many nodes: ``Client(["http://h1:8001", "http://h2:8002"])``.
    Without servers it reads ``DOQ_SERVERS`` (comma-separated URLs)."""

    def __init__(
        self,
        servers: str | Sequence[str] | None = None,
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        attempts_max: int = ATTEMPTS_MAX_DEFAULT,
        retry_s_max: float = RETRY_S_MAX_DEFAULT,
        rng: random.Random | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._router = Router(servers_from_env(servers))
        self._timeout_s = timeout_s
        self._attempts_max = attempts_max
        self._retry_s_max = retry_s_max
        self._rng = rng or random.Random()
        self._http = http or httpx.Client(timeout=timeout_s)
        self._ids: list[int] = []
        self._ids_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def leader_url(self) -> str | None:
        return self._router.leader

    def _run(self, call: Call) -> Any:
        if call.ids_needed:
            call = call.with_ids(self._take_ids(call.ids_needed))
        if call.to_leader and not self._router.discovered:
            self._discover()
        started = time.monotonic()
        unknown = False
        last = "no attempt"
        for attempt in range(self._attempts_max):
            url = self._router.pick(call.to_leader)
            try:
                response = self._send(url, call)
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
            if time.monotonic() + wait - started > self._retry_s_max:
                break
            time.sleep(wait)
        raise Unavailable(f"{call.method} {call.path} failed after retries (last: {last})", None)

    def _send(self, url: str, call: Call) -> httpx.Response:
        return self._http.request(
            call.method,
            url + call.path,
            params=call.params,
            json=call.body if call.files is None else None,
            files=call.files,
            timeout=self._timeout_s + call.wait_s,
        )

    def _discover(self) -> None:
        """Learn the leader and the other nodes; on failure, requests go through any node."""
        self._router.discovered = True
        with contextlib.suppress(Unavailable):
            self._router.learn(self._run(servers_call()))

    def _take_ids(self, number: int) -> list[int]:
        with self._ids_lock:
            while len(self._ids) < number:
                want = min(GENERATE_IDS_MAX, max(ID_POOL_SIZE, number - len(self._ids)))
                self._ids.extend(self._run(ids_call(want)))
            taken, self._ids = self._ids[:number], self._ids[number:]
            return taken

    def consume(self, queue: str, *, prefetch: int = 64, wait: float = 20.0) -> Iterator[Delivery]:
        """Messages of ``queue`` as they come, forever (``break`` to stop): each one in flight
        until you ``ack()``, ``nack()`` it or its ack deadline passes; ``touch()`` extends it.
        Fetched by long polls of up to ``prefetch`` messages (docs/api.md); those fetched and
        not yet handed out when the loop ends are given back at once, not at their deadline."""
        count = consume_batch_size(prefetch)
        held: list[Any] = []
        try:
            while True:
                held = self._next_batch(queue, count, wait)
                while held:
                    yield Delivery.of(self, queue, held.pop(0))
        finally:
            if held:  # fetched but never handed out (the loop ended): back to the queue now
                self.nack_many(queue, held)

    def _next_batch(self, queue: str, count: int, wait: float) -> list[Any]:
        """The consumer's source of messages: a long poll. The streaming endpoint, once the
        server has it, takes this place (docs/client.md, "Consumers")."""
        return self.dequeue_many(queue, count, wait=wait)  # type: ignore[no-any-return]
