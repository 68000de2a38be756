"""Long polling: a dequeue that waits on the leader until a message is ready, woken by events.

A worker fleet must not poll an empty queue in a loop (the Go server answers "Queue is empty" at
once). A dequeue with ``wait`` is held on the leader instead (a follower relays it there, doq/api/
serving.py) and tries again only when something can have made a message ready:

- a write on its queue commits on this leader (an enqueue, a nack, a priority or settings change,
  an ack or delete that frees a fair group's ``max_unacked`` slot, expired messages returned by
  the leader's ExpireDue (doq/expiry.py), a restore): ``committed``;
- a time the state knows comes: a delayed message's due time, an in-flight message's ack deadline
  (``QueueStateMachine.next_due_ms``): the waiter sleeps exactly until then;
- the leadership changes (``watch_leadership``): the waiter looks again, finds it no longer leads,
  and the request ends with a 503 that says nothing was taken, so the client retries; the same
  when the node stops (``ReadyWaits.close``), so that waits do not hold up a graceful shutdown.
Never a poll loop. Each event wakes one waiter of the queue (the longest waiting); a waiter that
got messages wakes the next, since more may be ready, and a waiter that leaves without using its
wake-up passes it on. So an enqueue costs one dequeue attempt, however many consumers wait.

A waiter registers before each attempt, so an event that commits while the attempt is in flight
is not lost: the attempt's command may have been ordered before it, and the waiter looks again.
Nothing is taken twice: every attempt is an ordinary replicated Dequeue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from doq.commands import (
    Ack,
    AckMany,
    Command,
    DeleteMessage,
    DeleteQueue,
    Enqueue,
    ExpireDue,
    Nack,
    NackMany,
    RestoreState,
    UpdatePriority,
    UpdateQueue,
)
from doq.protocol import WAIT_S_MAX as WAIT_S_MAX  # re-exported: its users import it here
from doq.service import NotLeaderError, NotProposedError, RejectedError, UnavailableError
from doq.state.results import Enqueued, QueueInfo, RejectCode, Result

MS_PER_S = 1000
_MAKES_READY = (Enqueue, Nack, NackMany, UpdatePriority, UpdateQueue, ExpireDue)
_FREES_A_SLOT = (Ack, AckMany, DeleteMessage)  # on a fair queue with max_unacked


@attrs.define(eq=False)
class Ticket:
    queue: str
    woken: trio.Event = attrs.field(factory=trio.Event)


class ReadyWaits:
    """The waiters of each queue, in arrival order."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Ticket]] = {}
        self.closed = False

    def close(self) -> None:
        """The node is stopping: every wait ends now, and no new one begins."""
        self.closed = True
        self.wake_all()

    def register(self, queue: str) -> Ticket:
        ticket = Ticket(queue)
        self._waiting.setdefault(queue, []).append(ticket)
        return ticket

    def unregister(self, ticket: Ticket) -> None:
        tickets = self._waiting.get(ticket.queue)
        if tickets is None:
            return
        tickets.remove(ticket)
        if not tickets:
            del self._waiting[ticket.queue]

    def waiting(self, queue: str) -> int:
        return len(self._waiting.get(queue, ()))

    def wake_one(self, queue: str) -> None:
        for ticket in self._waiting.get(queue, ()):
            if not ticket.woken.is_set():
                ticket.woken.set()
                return

    def wake_all(self, queue: str | None = None) -> None:
        """Every waiter (of ``queue`` only, when given)."""
        groups = self._waiting.values() if queue is None else [self._waiting.get(queue, [])]
        for tickets in groups:
            for ticket in tickets:
                ticket.woken.set()

    def committed(
        self, command: Command, result: Result, info: Callable[[str], QueueInfo | None]
    ) -> None:
        """A write committed on this leader: wake a waiter if it may have made a message ready.
        ``info`` reads a queue's settings (only asked when an ack has waiters to wake)."""
        if isinstance(command, RestoreState):
            self.wake_all()
            return
        queue = getattr(command, "queue", None) or getattr(command, "name", None)
        if queue is None or queue not in self._waiting:
            return
        if isinstance(command, DeleteQueue):
            self.wake_all(queue)  # each then answers 404 at once, not at the end of its wait
        elif isinstance(command, Enqueue):
            if isinstance(result, Enqueued) and result.duplicates == len(result.messages):
                return  # every message was already there: nothing new
            self.wake_one(queue)
        elif isinstance(command, _MAKES_READY):
            self.wake_one(queue)
        elif isinstance(command, _FREES_A_SLOT):
            settings = info(queue)
            if settings is not None and settings.settings.max_unacked:
                self.wake_one(queue)


class WaitSource(Protocol):
    """What a waiting dequeue needs from the service (a protocol so tests can stand in)."""

    async def dequeue(self, queue: str, *, ack: bool, count: int = 1) -> Result: ...

    def next_due_ms(self, queue: str) -> int | None: ...

    def clock_ms(self) -> int: ...


async def dequeue_waiting(
    source: WaitSource, waits: ReadyWaits, queue: str, *, ack: bool, count: int, wait_s: float
) -> Result:
    """Dequeue up to ``count``, waiting up to ``wait_s`` seconds for a first message. Raises as
    ``dequeue`` does (``RejectedError`` QUEUE_EMPTY when the wait ends with nothing), except that
    a leadership change while waiting is an ``UnavailableError`` (nothing was taken)."""
    ends_at = trio.current_time() + wait_s
    holding = False
    while True:
        ticket = waits.register(queue)
        try:
            attempt = await _attempt(source, queue, ack=ack, count=count, holding=holding)
            if not isinstance(attempt, RejectedError):
                waits.wake_one(queue)  # more may be ready: the next waiter looks
                return attempt
            if waits.closed:
                raise UnavailableError("the node is stopping; nothing was dequeued")
            if trio.current_time() >= ends_at:
                if ticket.woken.is_set():
                    waits.wake_one(queue)  # a wake-up this waiter will not use
                raise attempt
            holding = True
            with trio.move_on_at(_wake_at(source, queue, ends_at)):
                await ticket.woken.wait()
        finally:
            waits.unregister(ticket)


async def _attempt(
    source: WaitSource, queue: str, *, ack: bool, count: int, holding: bool
) -> Result | RejectedError:
    try:
        return await source.dequeue(queue, ack=ack, count=count)
    except RejectedError as exc:
        if exc.code is not RejectCode.QUEUE_EMPTY:
            raise
        return exc
    except NotLeaderError:
        if holding:
            raise UnavailableError(
                "the leadership changed while the request waited; nothing was dequeued"
            ) from None
        raise  # the first attempt: the request is relayed to the leader, which holds it
    except NotProposedError as exc:
        # A leader handing its leadership over refuses proposals before its role changes: the
        # wait ends as a leadership change does, and nothing entered the log.
        raise UnavailableError(f"{exc}; nothing was dequeued", exc.retry_after_s) from None


def _wake_at(source: WaitSource, queue: str, ends_at: float) -> float:
    """The Trio time to look again by time alone: the queue's next due time, or the wait's end."""
    due_ms = source.next_due_ms(queue)
    if due_ms is None:
        return ends_at
    now = trio.current_time()
    return min(ends_at, now + max(0, due_ms - source.clock_ms()) / MS_PER_S)


async def watch_leadership(role_changed: Callable[[], Awaitable[None]], waits: ReadyWaits) -> None:
    """Wake every waiter at each role change, so that none waits on a node that stopped
    leading (run for the node's life)."""
    while True:
        await role_changed()
        waits.wake_all()
