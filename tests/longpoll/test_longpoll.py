"""Waiting dequeues (doq/longpoll.py) against a stand-in service, on Trio's MockClock: woken by a
committed write, by a due time the state knows, by a leadership change; never by polling."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from doq.commands import Ack, DeleteQueue, Enqueue, Nack, NewMessage, QueueType
from doq.longpoll import ReadyWaits, dequeue_waiting, watch_leadership
from doq.service import NotLeaderError, NotProposedError, RejectedError, UnavailableError
from doq.state.results import (
    Dequeued,
    Enqueued,
    Message,
    QueueDeleted,
    QueueInfo,
    QueueSettings,
    RejectCode,
    Rejected,
)

T0_MS = 1_750_000_000_000


class Source:
    """A queue of ready messages and the times at which more come due; counts its attempts."""

    def __init__(self, waits: ReadyWaits) -> None:
        self.waits = waits
        self.ready: list[int] = []
        self.due: dict[int, int] = {}  # message id -> due time (ms, this source's clock)
        self.attempts = 0
        self.leader = True
        self.transferring = False  # a leader handing over refuses proposals (ProposalDropped)
        self.start = trio.current_time()

    def clock_ms(self) -> int:
        return T0_MS + round((trio.current_time() - self.start) * 1000)

    def next_due_ms(self, queue: str) -> int | None:
        return min(self.due.values(), default=None)

    async def dequeue(self, queue: str, *, ack: bool, count: int = 1):
        self.attempts += 1
        await trio.sleep(0)  # a proposal takes a moment: events may commit meanwhile
        if not self.leader:
            raise NotLeaderError("other", "127.0.0.1:1")
        if self.transferring:
            raise NotProposedError("leadership transfer in progress")
        now = self.clock_ms()
        for message_id, due_ms in list(self.due.items()):
            if due_ms <= now:
                self.ready.append(message_id)
                del self.due[message_id]
        if not self.ready:
            raise RejectedError(Rejected(RejectCode.QUEUE_EMPTY, f"Queue is empty: {queue}"))
        taken, self.ready = self.ready[:count], self.ready[count:]
        return Dequeued(tuple(Message(i, "default", 0, "x", None, 1) for i in taken))

    def enqueue(self, *ids: int) -> None:
        self.ready.extend(ids)
        command = Enqueue(T0_MS, "q", tuple(NewMessage(i, 0, "x") for i in ids))
        result = Enqueued(tuple(Message(i, "default", 0, "x", None) for i in ids), 0)
        self.waits.committed(command, result, lambda name: None)


async def waiting(source, waits, results, wait_s=10.0, count=1):
    try:
        results.append(
            await dequeue_waiting(source, waits, "q", ack=False, count=count, wait_s=wait_s)
        )
    except (RejectedError, UnavailableError) as exc:
        results.append(exc)


def ids_of(result) -> list[int]:
    return [m.id for m in result.messages]


async def test_a_waiting_dequeue_is_woken_by_an_enqueue_that_commits(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    results = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting, source, waits, results)
        await trio.testing.wait_all_tasks_blocked()
        assert source.attempts == 1 and waits.waiting("q") == 1
        await trio.sleep(3)
        assert source.attempts == 1  # no polling while nothing happens
        woken_at = trio.current_time()
        source.enqueue(7)
    assert ids_of(results[0]) == [7]
    assert trio.current_time() == woken_at and source.attempts == 2
    assert waits.waiting("q") == 0


async def test_a_wait_that_ends_with_nothing_raises_queue_empty_at_its_end(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    results = []
    started = trio.current_time()
    await waiting(source, waits, results, wait_s=2.5)
    (empty,) = results
    assert isinstance(empty, RejectedError) and empty.code is RejectCode.QUEUE_EMPTY
    assert trio.current_time() - started == pytest.approx(2.5)
    assert source.attempts == 2  # the first look, and the last one at the end of the wait


async def test_a_due_time_wakes_the_waiter_exactly_then(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    source.due[5] = source.clock_ms() + 1_200  # a delayed message, or an expiring lease
    results = []
    started = trio.current_time()
    await waiting(source, waits, results)
    assert ids_of(results[0]) == [5]
    assert trio.current_time() - started == pytest.approx(1.2)
    assert source.attempts == 2


async def test_one_enqueue_wakes_one_waiter_and_a_served_waiter_wakes_the_next(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    results: list = []
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(waiting, source, waits, results, 1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert source.attempts == 5
        source.enqueue(1)
        await trio.testing.wait_all_tasks_blocked()
        # the woken one took it and woke the next, which found nothing: 2 attempts, not 5
        assert source.attempts == 7
        assert [ids_of(r) for r in results] == [[1]]
        source.enqueue(2, 3)  # two ready: the first waiter takes one and wakes the next
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(ids_of(r)[0] for r in results) == [1, 2, 3]
    empties = [r for r in results if isinstance(r, RejectedError)]
    assert len(empties) == 2


async def test_an_event_during_an_attempt_is_not_lost(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    results = []

    async def enqueue_during_the_first_attempt():
        await trio.sleep(0)  # the waiter's attempt is in flight (registered, not waiting yet)
        source.enqueue(9)
        source.ready.clear()  # ... ordered after the attempt: the attempt finds nothing
        source.ready.append(9)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting, source, waits, results, 5.0)
        nursery.start_soon(enqueue_during_the_first_attempt)
    assert ids_of(results[0]) == [9]


async def test_a_leadership_change_ends_the_wait_with_nothing_taken(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    events = [trio.Event()]
    results = []

    async def role_changed():
        """As the Raft node's: returns at the next change, then waits for another one."""
        await events[-1].wait()
        events.append(trio.Event())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting, source, waits, results)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(watch_once, role_changed, waits)
        await trio.testing.wait_all_tasks_blocked()
        source.leader = False
        events[-1].set()
    (ended,) = results
    assert isinstance(ended, UnavailableError) and "nothing was dequeued" in str(ended)
    assert trio.current_time() < 10


async def test_a_transfer_refusing_the_attempt_ends_the_wait_with_nothing_taken(autojump_clock):
    """The leader being handed over refuses the woken waiter's proposal before its role changes
    (a race the cluster test met under load): the answer still says nothing was dequeued."""
    waits = ReadyWaits()
    source = Source(waits)
    results = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting, source, waits, results)
        await trio.testing.wait_all_tasks_blocked()
        source.transferring = True
        source.enqueue(7)  # wakes the waiter, whose attempt is refused
    (ended,) = results
    assert isinstance(ended, UnavailableError), ended
    assert "nothing was dequeued" in str(ended) and "transfer" in str(ended)
    assert source.ready == [7]


async def watch_once(role_changed, waits):
    with trio.move_on_after(1):
        await watch_leadership(role_changed, waits)


async def test_a_follower_raises_not_leader_at_once_so_the_request_is_relayed(autojump_clock):
    waits = ReadyWaits()
    source = Source(waits)
    source.leader = False
    with pytest.raises(NotLeaderError):
        await dequeue_waiting(source, waits, "q", ack=False, count=1, wait_s=10)
    assert waits.waiting("q") == 0


def info(max_unacked: int) -> QueueInfo:
    settings = QueueSettings(None, max_unacked, 30)
    return QueueInfo("q", QueueType.FAIR, settings, 0, 1, 0, 0, 0, 0, 0)


def test_which_commits_wake_a_waiter():
    waits = ReadyWaits()
    ticket = waits.register("q")
    waits.committed(Ack(T0_MS, "q", 1), Rejected(RejectCode.QUEUE_EMPTY, ""), lambda _: info(0))
    assert not ticket.woken.is_set()  # an ack frees no slot without max_unacked
    waits.committed(Ack(T0_MS, "q", 1), Rejected(RejectCode.QUEUE_EMPTY, ""), lambda _: info(2))
    assert ticket.woken.is_set()
    other = waits.register("q")
    duplicate = Enqueued((Message(1, "default", 0, "x", None),), 1, (0,))
    waits.committed(Enqueue(T0_MS, "q", (NewMessage(1, 0, "x"),)), duplicate, lambda _: None)
    assert not other.woken.is_set()  # nothing new
    waits.committed(Nack(T0_MS, "q", 1), Rejected(RejectCode.QUEUE_EMPTY, ""), lambda _: None)
    assert other.woken.is_set()


def test_deleting_the_queue_wakes_all_its_waiters_and_no_others():
    waits = ReadyWaits()
    mine = [waits.register("q"), waits.register("q")]
    other = waits.register("other")
    deleted = QueueDeleted("q", 0)
    waits.committed(DeleteQueue(T0_MS, "q"), deleted, lambda _: None)
    assert all(t.woken.is_set() for t in mine) and not other.woken.is_set()
