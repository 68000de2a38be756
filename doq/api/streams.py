"""One stream (``/API/v1/queues/{name}/stream``): a streaming consumer and producer on a socket.

Why: one HTTP request per message makes HTTP parsing, not consensus, the limit (issue 8). On a
stream the frames a client sends while a command is in flight are gathered, and each run of
frames of one kind becomes one replicated command (an ``Enqueue`` of many messages, an
``AckMany``, ``NackMany`` or ``TouchMany``), answered in one ``results`` frame, an outcome per
client frame by its ``ref``; and
a consumer that granted credit gets messages pushed as they become ready, woken by the same
events as a long-polling dequeue (doq/longpoll.py), never more than the credit it granted.

Three tasks share the socket: the reader (parses and validates each frame; a bad one ends the
stream with an error frame), the writer (one command at a time, in the order the frames came),
and the pusher (dequeues up to the credit left). The first of them to end the stream records why,
the others are cancelled, and the error frame goes out before the close.

Where: a stream is served on the leader only. A follower answers with an error frame naming the
leader and closes, and the client reconnects there (the serve decision, doq/api/serving.py,
``ServeDecision.stream_home``; docs/api.md says why streams are not relayed). A leadership change
while streaming ends the stream the same way. Messages delivered and not yet acked stay in flight
until their ack deadline, whatever becomes of the socket.

The socket itself is two callables (``receive`` and ``send`` of text), so the session knows no
web framework; doq/api/routes_stream.py binds it to Quart's WebSocket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import msgspec
import trio

from doq.api.context import ApiContext
from doq.api.errors import ApiProblem, problem_for_service_error, validation_problem
from doq.api.receipts import delivery_of
from doq.api.routes_batch import enqueued_items, item_result, message_id_at
from doq.api.routes_messages import delivered_body, message_input
from doq.api.schemas import BATCH_ITEMS_MAX, EnqueuedItemBody, InFlightResultBody
from doq.api.serving import unanswered_in_time
from doq.api.stream_frames import (
    ENCODER,
    STREAM_CREDIT_MAX,
    AckFrame,
    ClientFrame,
    CreditFrame,
    DeliverFrame,
    EnqueueFrame,
    ErrorFrame,
    NackFrame,
    RefResult,
    ResultsFrame,
    TouchFrame,
    client_frames_of,
)
from doq.commands import DEQUEUE_COUNT_MAX, InFlightItem, NackItem
from doq.longpoll import WAIT_S_MAX, dequeue_waiting
from doq.service import MessageInput, NotLeaderError, RejectedError, ServiceError
from doq.state.results import Dequeued, Enqueued, ManyResults, RejectCode

Receive = Callable[[], Awaitable[str | bytes]]
SendText = Callable[[str], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_BAD_FRAME = 1008  # policy violation: the frame broke the protocol
CLOSE_TRY_AGAIN = 1013  # try again later: not the leader, no leader, or unavailable
CLOSE_INTERNAL = 1011

log = logging.getLogger("doq.api")


class ClientGone(Exception):
    """The client closed the socket."""


@attrs.frozen
class Ending:
    """Why the stream ends: the error frame to send (None: the client left) and the close code."""

    frame: ErrorFrame | None
    code: int


@attrs.frozen
class Pending:
    """A validated client frame waiting for the writer: its kind, ref, and the item it becomes."""

    kind: type[ClientFrame]
    ref: str
    item: MessageInput | InFlightItem | NackItem
    size_bytes: int


def error_frame(problem: ApiProblem, leader: str | None = None) -> ErrorFrame:
    return ErrorFrame(
        status=problem.status, detail=problem.detail, errors=problem.errors, leader=leader
    )


def not_leader_ending(exc: NotLeaderError) -> Ending:
    problem = problem_for_service_error(exc)
    leader = f"http://{exc.leader_http}" if exc.leader_http else None
    return Ending(error_frame(problem, leader), CLOSE_TRY_AGAIN)


def problem_ending(problem: ApiProblem, code: int | None = None) -> Ending:
    """The ending for a problem; its close code follows from its status unless given."""
    if code is None:
        code = CLOSE_TRY_AGAIN if problem.status in (503, 507) else CLOSE_BAD_FRAME
        code = CLOSE_INTERNAL if problem.status == 500 else code
    return Ending(error_frame(problem), code)


def pending_of(frame: ClientFrame, size_bytes: int) -> Pending:
    """The writer's item for a frame (raises ``ApiProblem`` 422 for what the schema let by)."""
    if isinstance(frame, EnqueueFrame):
        item: MessageInput | InFlightItem | NackItem = message_input(frame.message, "message")
    else:
        assert isinstance(frame, AckFrame | NackFrame | TouchFrame), frame
        message_id = message_id_at(frame.id, "id")
        delivery = delivery_of(frame.receipt, message_id, "receipt")
        if isinstance(frame, NackFrame):
            item = NackItem(message_id, frame.priority, frame.metadata, delivery)
        else:
            item = InFlightItem(message_id, delivery)
    return Pending(type(frame), frame.ref, item, size_bytes)


@attrs.define(eq=False)
class StreamSession:
    api: ApiContext
    queue: str
    ack: bool  # ``?ack=true``: delivered is done (no ack follows), as a dequeue's ``ack``
    send_text: SendText
    credit: int = 0
    ending: Ending | None = None
    _credit_granted: trio.Event = attrs.field(factory=trio.Event)
    _pending: list[Pending] = attrs.field(factory=list)
    _pending_added: trio.Event = attrs.field(factory=trio.Event)
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _scope: trio.CancelScope | None = None

    async def run(self, receive: Receive) -> Ending:
        """Serve the stream until the client leaves or it must end; the caller sends
        ``ending.frame`` (when there is one) and closes with ``ending.code``."""
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            nursery.start_soon(self._guarded, self._write)
            nursery.start_soon(self._guarded, self._push)
            await self._guarded(self._read, receive)
        return self.ending or Ending(None, CLOSE_NORMAL)

    def end(self, ending: Ending) -> None:
        """Record the first reason to end, and stop every task."""
        if self.ending is None:
            self.ending = ending
        assert self._scope is not None
        self._scope.cancel()

    async def _guarded(self, task: Callable[..., Awaitable[None]], *args: object) -> None:
        try:
            await task(*args)
        except ClientGone:
            self.end(Ending(None, CLOSE_NORMAL))
        except ApiProblem as problem:
            self.end(problem_ending(problem))
        except NotLeaderError as exc:
            self.end(not_leader_ending(exc))
        except ServiceError as exc:
            self.end(await self._service_ending(exc))
        except trio.TooSlowError:
            timeout_s = self.api.settings.request_timeout_s
            self.end(problem_ending(unanswered_in_time(timeout_s, is_write=True)))
        except Exception as exc:  # a bug: logged, and the stream ends; the node goes on
            log.error("unexpected error in a stream of queue %s", self.queue, exc_info=exc)
            self.end(problem_ending(ApiProblem(500, "internal error; it has been logged")))

    async def _service_ending(self, exc: ServiceError) -> Ending:
        """A 503 on a node that no longer leads (a wait cut by a leadership change) names the
        new leader, as the serve decision finds it (waiting for one within the request timeout),
        so the client reconnects there."""
        ending = problem_ending(problem_for_service_error(exc))
        if ending.frame is None or ending.frame.status != 503 or self.api.service.raft.is_leader:
            return ending
        timeout_s = self.api.settings.request_timeout_s
        try:
            leader = await self.api.dispatcher.decision.stream_home(trio.current_time() + timeout_s)
        except ApiProblem:
            return ending
        if leader is None:  # it leads again: the client may as well reconnect here
            return ending
        frame = msgspec.structs.replace(ending.frame, leader=f"http://{leader}")
        return Ending(frame, ending.code)

    async def _send(self, frame: msgspec.Struct) -> None:
        text = ENCODER.encode(frame).decode()
        async with self._send_lock:
            await self.send_text(text)

    # --- the reader ------------------------------------------------------------------------------

    async def _read(self, receive: Receive) -> None:
        limit_bytes = self.api.settings.max_body_bytes
        while True:
            data = await receive()
            try:
                if len(data) > limit_bytes:
                    raise ApiProblem(413, f"a frame may have at most {limit_bytes} bytes")
                self._take(client_frames_of(data), len(data))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                problem = validation_problem(str(exc), "frame")
                self.end(problem_ending(problem, CLOSE_BAD_FRAME))
                return
            except ApiProblem as problem:
                self.end(problem_ending(problem, CLOSE_BAD_FRAME))
                return

    def _take(self, frames: list[ClientFrame], size_bytes: int) -> None:
        """Queue a text frame's client frames for the writer, or (one invalid) none of them."""
        credit = sum(frame.credit for frame in frames if isinstance(frame, CreditFrame))
        share_bytes = size_bytes // len(frames)
        pending = [pending_of(f, share_bytes) for f in frames if not isinstance(f, CreditFrame)]
        if credit:
            self._grant(credit)
        if pending:
            self._pending += pending
            self._pending_added.set()

    def _grant(self, credit: int) -> None:
        if self.credit + credit > STREAM_CREDIT_MAX:
            raise ApiProblem(422, f"credit granted and not used may be at most {STREAM_CREDIT_MAX}")
        self.credit += credit
        self._credit_granted.set()

    # --- the writer ------------------------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            await self._pending_added.wait()
            self._pending_added = trio.Event()
            while self._pending:
                await self._gather()
                run = self._take_run()
                await self._apply(run)

    async def _gather(self) -> None:
        """Let the frames already read from the socket reach the reader before a run is taken.
        Each frame passes a few tasks (Hypercorn's, Quart's, the reader) one scheduling round at
        a time, while a command holds the event loop through its apply and fsync; taking a run
        as soon as one frame is there made commands of one or two messages (measured: frames
        came in pairs, streaming enqueue ran at a fifth of batch enqueue). Stops as soon as a
        round brings nothing new: no waiting for frames that are not there."""
        seen = -1
        while seen != len(self._pending) and len(self._pending) < BATCH_ITEMS_MAX:
            seen = len(self._pending)
            await trio.sleep(0)

    def _take_run(self) -> list[Pending]:
        """The longest leading run of frames of one kind that fits one command."""
        kind = self._pending[0].kind
        limit_bytes = self.api.settings.max_body_bytes
        size_bytes = 0
        count = 0
        for pending in self._pending:
            size_bytes += pending.size_bytes
            if pending.kind is not kind or count == BATCH_ITEMS_MAX:
                break
            if count and size_bytes > limit_bytes:
                break
            count += 1
        run, self._pending[:count] = self._pending[:count], []
        return run

    async def _apply(self, run: list[Pending]) -> None:
        """One command for the run; a refusal of the whole command (the queue is gone) raises
        and ends the stream."""
        service = self.api.service
        kind = run[0].kind
        items = [pending.item for pending in run]
        with trio.fail_after(self.api.settings.request_timeout_s):
            if kind is EnqueueFrame:
                result = await service.enqueue(self.queue, items)  # type: ignore[arg-type]
            elif kind is AckFrame:
                result = await service.ack_many(self.queue, items)  # type: ignore[arg-type]
            elif kind is NackFrame:
                result = await service.nack_many(self.queue, items)  # type: ignore[arg-type]
            else:
                result = await service.touch_many(self.queue, items)  # type: ignore[arg-type]
        bodies: list[EnqueuedItemBody | InFlightResultBody]
        if isinstance(result, Enqueued):
            bodies = enqueued_items(result)
        else:
            assert isinstance(result, ManyResults), result
            bodies = [
                item_result(pending.item.id, outcome)  # type: ignore[arg-type, union-attr]
                for pending, outcome in zip(run, result.results, strict=True)
            ]
        results = [
            RefResult(ref=pending.ref, result=body)
            for pending, body in zip(run, bodies, strict=True)
        ]
        await self._send(ResultsFrame(results=results))

    # --- the pusher ------------------------------------------------------------------------------

    async def _push(self) -> None:
        service = self.api.service
        while True:
            while self.credit == 0:
                await self._credit_granted.wait()
                self._credit_granted = trio.Event()
            count = min(self.credit, DEQUEUE_COUNT_MAX)
            try:
                result = await dequeue_waiting(
                    service,
                    self.api.waits,
                    self.queue,
                    ack=self.ack,
                    count=count,
                    wait_s=WAIT_S_MAX,
                )
            except RejectedError as exc:
                if exc.code is RejectCode.QUEUE_EMPTY:
                    continue  # the wait ended with nothing: wait again
                raise
            assert isinstance(result, Dequeued), result
            self.credit -= len(result.messages)
            await self._send(DeliverFrame(messages=[delivered_body(m) for m in result.messages]))
