"""``StreamConsumer``: one queue's messages over the WebSocket stream (docs/api.md, "Streams"),
for ``AsyncClient.consume`` and the worker (docs/client.md, "Consumers").

Credit: the consumer grants the server credit so that the messages delivered to it and not yet
acked or nacked never exceed ``prefetch``; an ack or nack frees its credit, and the grant rides in
the same bundle as the frames that freed it. Acks, nacks and touches are frames with a ``ref``,
answered by ref; ``settle_many`` sends many in one bundle (one text frame, and one replicated
command on the server).

No background task: whichever task waits for something (a delivery, a result) reads the socket
while it holds the read lock, and hands every frame it reads to its owner. So the consumer lives
in an async generator as safely as in a worker's task group, under Trio or asyncio.

Reconnection: the server closes a stream when its node is not (or stops being) the leader, with
an error frame naming the leader; the consumer reconnects there, or to the next node the client
knows when the connection is lost, within the client's retry budget. Messages in hand stay
valid (receipts hold across leader changes) and their acks go on the new socket; frames sent on
a socket that was lost before they were answered are sent again over HTTP with their receipts,
and an ack or nack that then finds its message settled (404, or 409) counts as done, as with
``AsyncClient.ack`` after an attempt of unknown outcome. A message delivered and never acked
(the consumer died) comes back when its ack deadline passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from doq.client.calls import BATCH_ITEMS_MAX, delay_priority, quoted_queue, settlement_entry
from doq.client.errors import DoqError, Unavailable, error_for
from doq.client.models import SETTLE_VERBS, ItemError, ItemResult, Message, Settlement
from doq.client.routing import backoff_s, normalize
from doq.client.websocket import UpgradeRefused, WebSocket, WebSocketClosed, ws_url
from doq.protocol import STREAM_CREDIT_MAX

if TYPE_CHECKING:
    from doq.client.aio import AsyncClient

log = logging.getLogger("doq.client")

_DONE_STATUS = {"ack": "ACKNOWLEDGED", "nack": "UNACKNOWLEDGED"}


class StreamUnsupported(DoqError):
    """The server has no stream endpoint (an older doq, or the Go server): use long polling."""


@attrs.define
class _Op:
    """An ack, nack or touch frame awaiting its result."""

    verb: str
    entry: dict[str, Any]
    socket: int  # the connection it was sent on
    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: ItemResult | None = None


class StreamConsumer:
    def __init__(self, client: AsyncClient, queue: str, prefetch: int) -> None:
        if not 1 <= prefetch <= STREAM_CREDIT_MAX:
            raise ValueError(f"prefetch must be 1..{STREAM_CREDIT_MAX}, not {prefetch}")
        self.client = client
        self.queue = queue
        self.prefetch = prefetch
        self.reconnects = 0
        self._socket: WebSocket | None = None
        self._connection = 0  # counts sockets: an op remembers the one it went on
        self._url: str | None = None
        self._leader_hint: str | None = None  # where the last error frame said to go
        self._read_lock = anyio.Lock()
        self._connect_lock = anyio.Lock()
        self._buffer: deque[Message] = deque()  # delivered, not handed out yet
        self._held: set[int] = set()  # delivered and not acked or nacked (buffer included)
        self._credit_out = 0  # granted on this socket and not used yet
        self._ops: dict[str, _Op] = {}
        self._refs = 0
        self._failure: DoqError | None = None
        self._closed = False

    @property
    def unsettled(self) -> int:
        """Messages delivered and not yet acked or nacked (those not handed out included)."""
        return len(self._held)

    @property
    def buffered(self) -> int:
        """Messages delivered and not handed out yet by ``receive``."""
        return len(self._buffer)

    async def open(self) -> None:
        """Connects and grants the first credit; raises ``StreamUnsupported`` when the node
        refuses the upgrade."""
        if not self.client._router.discovered:
            with contextlib.suppress(DoqError):  # any node will do: a follower names the leader
                await self.client._discover()
        await self._ensure_socket(first=True)

    async def receive(self, count: int = 1) -> list[Message]:
        """The next delivered messages, at least one and at most ``count``."""
        await self._pump(lambda: bool(self._buffer), grant=True)  # returns at once when closed
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    async def settle_many(self, verb: str, settlements: list[Settlement]) -> list[ItemResult]:
        """Acks, nacks or touches on the socket, in one bundle; a result per settlement."""
        entries = [settlement_entry(s) for s in settlements]
        return await self._settle(verb, entries)

    async def ack(self, queue: str, message_id: int, *, receipt: str | None = None) -> None:
        await self._settle_one("ack", _entry(message_id, receipt))

    async def touch(self, queue: str, message_id: int, *, receipt: str | None = None) -> None:
        await self._settle_one("touch", _entry(message_id, receipt))

    async def nack(
        self,
        queue: str,
        message_id: int,
        *,
        priority: int = 0,
        delay: float | None = None,
        metadata: dict[str, str] | None = None,
        receipt: str | None = None,
    ) -> None:
        entry = _entry(message_id, receipt)
        entry["priority"] = delay_priority(delay) if delay is not None else priority
        if metadata is not None:
            entry["metadata"] = metadata
        await self._settle_one("nack", entry)

    async def aclose(self) -> None:
        """Closes the socket, so that nothing more is pushed to this consumer; its unanswered
        frames, later settlements, and the messages delivered and not handed out (given back:
        a nack that keeps their priority) go over HTTP. A message the server pushed in the
        instant before the close and that was not read comes back at its ack deadline."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._lost(self._connection)
            left = list(self._buffer)
            self._buffer.clear()
            self._held.difference_update(m.id for m in left)
            if left:
                try:
                    await self.client.nack_many(self.queue, left)
                except DoqError as exc:  # they come back at their ack deadline instead
                    log.warning("could not give back %d messages: %s", len(left), exc)

    # Settling

    async def _settle_one(self, verb: str, entry: dict[str, Any]) -> None:
        (result,) = await self._settle(verb, [entry])
        if result.error is not None:
            raise error_for(result.error.status, {"detail": result.error.detail})

    async def _settle(self, verb: str, entries: list[dict[str, Any]]) -> list[ItemResult]:
        assert verb in SETTLE_VERBS
        if self._closed or self._failure is not None:
            return await self._settle_over_http(verb, entries, after_loss=False)
        await self._ensure_socket()
        ops = []
        frames = []
        for entry in entries:
            self._refs += 1
            ref = str(self._refs)
            op = _Op(verb, entry, self._connection)
            self._ops[ref] = op
            ops.append(op)
            frames.append({"op": verb, "ref": ref, **entry})
            if verb != "touch":
                self._held.discard(int(entry["id"]))
        await self._send(frames + self._grant())
        await self._pump(lambda: all(op.done.is_set() for op in ops), grant=False)
        for op in ops:  # closed meanwhile: the close answers them over HTTP
            if not op.done.is_set():
                await op.done.wait()
        return [op.result for op in ops if op.result is not None]

    async def _settle_over_http(
        self, verb: str, entries: list[dict[str, Any]], after_loss: bool
    ) -> list[ItemResult]:
        results: list[ItemResult] = []
        for start in range(0, len(entries), BATCH_ITEMS_MAX):
            chunk = entries[start : start + BATCH_ITEMS_MAX]
            results.extend(await self.client.settle_entries(self.queue, verb, chunk))
        if after_loss and verb in _DONE_STATUS:
            # Sent on the lost socket too: "not in flight" may mean that frame was applied.
            results = [_done_if_settled(verb, r) for r in results]
        return results

    def _grant(self) -> list[dict[str, Any]]:
        room = self.prefetch - len(self._held) - self._credit_out
        if room <= 0 or self._socket is None:
            return []
        self._credit_out += room
        return [{"op": "credit", "credit": room}]

    async def _send(self, frames: list[dict[str, Any]]) -> None:
        if not frames:
            return
        socket, connection = self._socket, self._connection
        if socket is None:
            await self._lost(connection)
            return
        try:
            for start in range(0, len(frames), BATCH_ITEMS_MAX):  # a bundle's limit
                bundle = frames[start : start + BATCH_ITEMS_MAX]
                await socket.send(json.dumps(bundle if len(bundle) > 1 else bundle[0]))
        except WebSocketClosed:
            await self._lost(connection)

    # Reading

    async def _pump(self, done: Any, grant: bool) -> None:
        """Reads frames, whoever they are for, until ``done()``."""
        while not done():
            if self._failure is not None:
                raise self._failure
            async with self._read_lock:
                if done() or self._closed:
                    return
                await self._ensure_socket()
                if grant:
                    await self._send(self._grant())
                socket, connection = self._socket, self._connection
                if socket is None:
                    continue
                try:
                    texts = await socket.receive()
                except WebSocketClosed as exc:
                    log.info("stream of %s lost: %s", self.queue, exc)
                    await self._lost(connection)
                    continue
                for text in texts:
                    self._dispatch(json.loads(text))

    def _dispatch(self, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "deliver":
            for body in frame["messages"]:
                message = Message.parse(body)
                self._credit_out -= 1
                self._held.add(message.id)
                self._buffer.append(message)
        elif op == "results":
            for item in frame["results"]:
                waiting = self._ops.pop(item["ref"], None)
                if waiting is not None:  # else an answer from before a reconnection
                    waiting.result = ItemResult.parse(item["result"])
                    waiting.done.set()
        elif op == "error":
            if frame.get("status") == 503:
                self._leader_hint = frame.get("leader")
            else:
                self._failure = error_for(frame["status"], frame)

    # Connecting

    async def _lost(self, connection: int) -> None:
        """The socket of ``connection`` is gone: its unanswered frames go over HTTP."""
        with anyio.CancelScope(shield=True):
            if connection != self._connection:
                return
            self._connection += 1
            socket, self._socket = self._socket, None
            self._credit_out = 0
            if socket is not None:
                await socket.aclose()
            if self._leader_hint is None and self._url is not None and not self._closed:
                self.client._router.failed(self._url)
            orphans = {ref: op for ref, op in self._ops.items() if op.socket == connection}
            for ref in orphans:
                del self._ops[ref]
            for verb in SETTLE_VERBS:
                ops = [op for op in orphans.values() if op.verb == verb]
                if ops:
                    await self._resolve_over_http(verb, ops)

    async def _resolve_over_http(self, verb: str, ops: list[_Op]) -> None:
        try:
            results = await self._settle_over_http(verb, [op.entry for op in ops], True)
        except DoqError as exc:
            results = [_failed(op.entry, exc) for op in ops]
        for op, result in zip(ops, results, strict=True):
            op.result = result
            op.done.set()

    async def _ensure_socket(self, first: bool = False) -> None:
        if self._failure is not None:
            raise self._failure
        if self._socket is not None or self._closed:
            return
        async with self._connect_lock:
            attempt = 0
            while self._socket is None:
                url = self._next_url()
                try:
                    self._socket = await WebSocket.connect(
                        ws_url(url, f"{quoted_queue(self.queue)}/stream"),
                        timeout_s=self.client._timeout_s,
                    )
                except (OSError, TimeoutError, WebSocketClosed, UpgradeRefused) as exc:
                    if first and isinstance(exc, UpgradeRefused):
                        raise StreamUnsupported(str(exc), exc.status) from exc
                    self.client._router.failed(url)
                    attempt += 1
                    if attempt >= self.client._attempts_max:
                        raise Unavailable(f"no stream for {self.queue}: {exc!r}") from exc
                    await anyio.sleep(backoff_s(attempt, self.client._rng))
                    continue
                if self._closed:  # closed while connecting: this socket is not wanted
                    socket, self._socket = self._socket, None
                    await socket.aclose()
                    return
                self._url = url
                if not first:
                    self.reconnects += 1
                    log.info("stream of %s reconnected to %s", self.queue, url)
            await self._send(self._grant())

    def _next_url(self) -> str:
        hint, self._leader_hint = self._leader_hint, None
        if hint:
            return normalize(hint)
        return self.client._router.pick(True)


def _entry(message_id: int, receipt: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": str(message_id)}
    if receipt is not None:
        entry["receipt"] = receipt
    return entry


def _done_if_settled(verb: str, result: ItemResult) -> ItemResult:
    if result.error is not None and result.error.status in (404, 409):
        return ItemResult(result.id, _DONE_STATUS[verb])
    return result


def _failed(entry: dict[str, Any], exc: DoqError) -> ItemResult:
    return ItemResult(int(entry["id"]), "FAILED", error=ItemError(exc.status or 503, str(exc)))
