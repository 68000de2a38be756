"""Fair queues: who gets the next turn (API.md "Semantics", docs/state-machine.md decisions)."""

from __future__ import annotations

from doq.commands import (
    Ack,
    CreateQueue,
    Dequeue,
    Enqueue,
    NewMessage,
    QueueType,
    Strategy,
    UpdateQueue,
)
from doq.state.machine import QueueStateMachine
from doq.state.results import Dequeued, Message, RejectCode, Rejected

from .helpers import Log, open_machine, run, run_one

T = 1_750_000_000_000


def fair(
    sm: QueueStateMachine,
    log: Log,
    strategy: Strategy | None = None,
    max_unacked: int = 0,
) -> None:
    run_one(sm, log, CreateQueue(T, "f", QueueType.FAIR, 60, strategy, max_unacked))


def put(sm: QueueStateMachine, log: Log, *groups: str, first_id: int = 0) -> None:
    messages = tuple(NewMessage(first_id + i, 0, f"m{i}", g) for i, g in enumerate(groups))
    run_one(sm, log, Enqueue(T, "f", messages))


def take(sm: QueueStateMachine, log: Log, count: int, ack: bool = True) -> list[Message | None]:
    """Dequeue one at a time; None for an empty answer."""
    out: list[Message | None] = []
    for result in run(sm, log, *(Dequeue(T, "f", ack=ack) for _ in range(count))):
        if isinstance(result, Dequeued):
            out.append(result.messages[0])
        else:
            assert result.code is RejectCode.QUEUE_EMPTY
            out.append(None)
    return out


def ids(messages: list[Message | None]) -> list[int | None]:
    return [None if m is None else m.id for m in messages]


def groups(messages: list[Message | None]) -> list[str | None]:
    return [None if m is None else m.group for m in messages]


def test_the_go_servers_fair_order(machine: QueueStateMachine, log: Log) -> None:
    """kgantsov/doq's own fair-queue test: c1 x4, c2 x2, c3, c4."""
    fair(machine, log)
    put(machine, log, "c1", "c1", "c1", "c1", "c2", "c2", "c3", "c4")
    assert ids(take(machine, log, 9)) == [0, 4, 6, 7, 1, 5, 2, 3, None]


def test_the_go_order_holds_without_auto_ack_too(machine: QueueStateMachine, log: Log) -> None:
    fair(machine, log)
    put(machine, log, "c1", "c1", "c1", "c1", "c2", "c2", "c3", "c4")
    assert ids(take(machine, log, 8, ack=False)) == [0, 4, 6, 7, 1, 5, 2, 3]


def test_a_multi_message_dequeue_takes_the_same_turns(machine: QueueStateMachine, log: Log) -> None:
    fair(machine, log)
    put(machine, log, "c1", "c1", "c1", "c1", "c2", "c2", "c3", "c4")
    [result] = run(machine, log, Dequeue(T, "f", count=8, ack=True))
    assert [m.id for m in result.messages] == [0, 4, 6, 7, 1, 5, 2, 3]


def test_every_level_of_a_dotted_group_takes_turns(machine: QueueStateMachine, log: Log) -> None:
    fair(machine, log)
    put(machine, log, *["t1.a"] * 3, *["t1.b"] * 3, *["t2"] * 3)
    order = groups(take(machine, log, 9, ack=False))
    assert order == ["t1.a", "t2", "t1.b", "t2", "t1.a", "t2", "t1.b", "t1.a", "t1.b"]


def test_a_group_and_its_subgroups_share_one_turn(machine: QueueStateMachine, log: Log) -> None:
    """Group "a" sits under path "a" next to "a.x": together they get a's turn at the top."""
    fair(machine, log)
    put(machine, log, "a", "a", "a.x", "a.x", "b", "b", "b", "b")
    order = groups(take(machine, log, 8, ack=False))
    assert order == ["a", "b", "a.x", "b", "a", "b", "a.x", "b"]


def test_within_a_group_smaller_priority_then_smaller_id_goes_first(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log)
    messages = (NewMessage(10, 5, "a"), NewMessage(11, 1, "b"), NewMessage(9, 5, "c"))
    run_one(machine, log, Enqueue(T, "f", messages))
    assert ids(take(machine, log, 3)) == [11, 9, 10]


def test_a_group_at_max_unacked_is_skipped_until_an_ack(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log, max_unacked=1)
    put(machine, log, "A", "A", "A", "B", "B")
    assert ids(take(machine, log, 3, ack=False)) == [0, 3, None]
    run_one(machine, log, Ack(T, "f", 0))
    assert ids(take(machine, log, 2, ack=False)) == [1, None]


def test_raising_max_unacked_releases_capped_groups(machine: QueueStateMachine, log: Log) -> None:
    fair(machine, log, max_unacked=1)
    put(machine, log, "A", "A", "B", "B")
    assert ids(take(machine, log, 3, ack=False)) == [0, 2, None]
    run_one(machine, log, UpdateQueue(T, "f", max_unacked=0))
    assert ids(take(machine, log, 2, ack=False)) == [1, 3]


def test_weighted_gives_the_turn_to_the_group_with_most_headroom(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log, Strategy.WEIGHTED, max_unacked=3)
    put(machine, log, "A", "A", "A", "A")
    assert ids(take(machine, log, 2, ack=False)) == [0, 1]  # A now has 2 in flight
    put(machine, log, "B", "B", "B", "B", first_id=10)
    # B (0 in flight) goes until it has as many in flight as A, then ties rotate.
    assert groups(take(machine, log, 4, ack=False)) == ["B", "B", "A", "B"]
    assert ids(take(machine, log, 1, ack=False)) == [None]  # both at the cap of 3


def test_weighted_without_a_cap_balances_in_flight_counts(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log, Strategy.WEIGHTED, max_unacked=0)
    put(machine, log, *["A"] * 5, *["B"] * 5)
    order = groups(take(machine, log, 4, ack=False))
    assert order == ["A", "B", "A", "B"]
    run(machine, log, Ack(T, "f", 0), Ack(T, "f", 1))  # A: 0 in flight, B: 2
    # A gets turns until it has as many in flight as B again; then the tie rotates past A.
    assert groups(take(machine, log, 3, ack=False)) == ["A", "A", "B"]


def test_a_group_that_empties_rejoins_at_the_end_of_the_rotation(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log)
    put(machine, log, "A", "B", "C")
    assert ids(take(machine, log, 1, ack=True)) == [0]  # A holds nothing now: forgotten
    put(machine, log, "A", "D", first_id=10)
    assert groups(take(machine, log, 4)) == ["B", "C", "A", "D"]


def test_a_group_with_a_message_in_flight_keeps_its_place(
    machine: QueueStateMachine, log: Log
) -> None:
    fair(machine, log)
    put(machine, log, "A", "B", "C")
    assert ids(take(machine, log, 1, ack=False)) == [0]  # A still holds message 0
    put(machine, log, "A", "D", first_id=10)
    assert groups(take(machine, log, 4)) == ["B", "C", "D", "A"]


def test_the_next_turn_survives_a_restart(tmp_path: object) -> None:
    path = str(tmp_path) + "/state"  # type: ignore[operator]
    log = Log()
    sm = open_machine(path)
    fair(sm, log)
    put(sm, log, "c1", "c1", "c1", "c1", "c2", "c2", "c3", "c4")
    first = ids(take(sm, log, 3))
    sm.close()
    sm = open_machine(path)
    assert first + ids(take(sm, log, 5)) == [0, 4, 6, 7, 1, 5, 2, 3]
    sm.close()


def test_a_dequeue_on_an_unknown_queue_is_rejected(machine: QueueStateMachine, log: Log) -> None:
    result = run_one(machine, log, Dequeue(T, "nope"))
    assert isinstance(result, Rejected) and result.code is RejectCode.QUEUE_NOT_FOUND
