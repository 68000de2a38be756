"""Delayed queues, a message's life (ack, nack, touch, priority, delete, expiry) and queue settings,
each as API.md states it or as docs/state-machine.md decides where API.md is silent."""

from __future__ import annotations

from doq.commands import (
    QUEUE_NAME_CHARS_MAX,
    Ack,
    CreateQueue,
    DeleteMessage,
    DeleteQueue,
    Dequeue,
    Enqueue,
    Nack,
    NewMessage,
    QueueType,
    Strategy,
    Touch,
    UpdatePriority,
    UpdateQueue,
)
from doq.ids import IdGenerator
from doq.state.machine import QueueStateMachine
from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    Message,
    MessageDeleted,
    Nacked,
    PriorityUpdated,
    QueueCreated,
    QueueDeleted,
    QueueSettings,
    QueueUpdated,
    RejectCode,
    Rejected,
    StoredMessage,
    Touched,
)

from .helpers import Log, open_machine, run, run_one

T = 1_750_000_000_000  # Unix ms
T_S = T // 1000
ACK_TIMEOUT_S = 30


def delayed(sm: QueueStateMachine, log: Log, name: str = "d") -> None:
    run_one(sm, log, CreateQueue(T, name, QueueType.DELAYED, ACK_TIMEOUT_S))


def put(sm: QueueStateMachine, log: Log, *messages: NewMessage, at_ms: int = T) -> Enqueued:
    result = run_one(sm, log, Enqueue(at_ms, "d", messages))
    assert isinstance(result, Enqueued)
    return result


def take_ids(sm: QueueStateMachine, log: Log, at_ms: int, count: int = 1, ack: bool = False):
    result = run_one(sm, log, Dequeue(at_ms, "d", count=count, ack=ack))
    if isinstance(result, Rejected):
        assert result.code is RejectCode.QUEUE_EMPTY
        return []
    return [m.id for m in result.messages]


def rejected(result: object, code: RejectCode) -> bool:
    return isinstance(result, Rejected) and result.code is code


# --- delivery order and time ---------------------------------------------------------------------


def test_smallest_priority_first_and_ties_by_id(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(5, 20, "a"), NewMessage(3, 10, "b"), NewMessage(4, 10, "c"))
    assert take_ids(machine, log, T, count=3) == [3, 4, 5]


def test_a_future_priority_is_not_delivered_before_its_second(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, T_S + 10, "later"), NewMessage(2, T_S - 1, "now"))
    assert take_ids(machine, log, T) == [2]
    assert take_ids(machine, log, (T_S + 10) * 1000 - 1) == []
    assert take_ids(machine, log, (T_S + 10) * 1000) == [1]


def test_a_delayed_queue_stores_every_message_in_the_default_group(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    result = put(machine, log, NewMessage(1, 0, "x", group="tenant.a"))
    assert result.messages[0].group == "default"


def test_a_dequeue_returns_the_whole_message(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 7, "body", metadata={"k": "v"}))
    result = run_one(machine, log, Dequeue(T, "d"))
    assert result == Dequeued((Message(1, "default", 7, "body", {"k": "v"}, deliveries=1),))


# --- in flight -----------------------------------------------------------------------------------


def test_ack_true_removes_the_message_on_delivery(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    assert take_ids(machine, log, T, ack=True) == [1]
    assert rejected(machine.get_message("d", 1), RejectCode.MESSAGE_NOT_FOUND)
    info = machine.queue_info("d")
    assert (info.ready, info.unacked, info.dequeued_total, info.acked_total) == (0, 0, 1, 1)


def test_an_unacked_message_comes_back_when_its_deadline_passes(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    assert take_ids(machine, log, T) == [1]
    deadline = T + ACK_TIMEOUT_S * 1000
    assert machine.get_message("d", 1) == StoredMessage(
        Message(1, "default", 0, "x", None, deliveries=1), True, deadline
    )
    assert take_ids(machine, log, deadline - 1) == []
    assert take_ids(machine, log, deadline) == [1]
    assert machine.queue_info("d").expired_total == 1


def test_expired_messages_return_in_deadline_order_with_their_priority(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 5, "a"), NewMessage(2, 5, "b"))
    assert take_ids(machine, log, T) == [1]
    assert take_ids(machine, log, T + 1_000) == [2]
    run_one(machine, log, UpdatePriority(T, "d", 2, 1))  # in flight: only its future priority
    later = T + 1_000 + ACK_TIMEOUT_S * 1000
    assert take_ids(machine, log, later, count=2) == [2, 1]


def test_ack_nack_touch_need_a_message_in_flight(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    for command in (Ack(T, "d", 1), Nack(T, "d", 1), Touch(T, "d", 1), Ack(T, "d", 99)):
        assert rejected(run_one(machine, log, command), RejectCode.MESSAGE_NOT_FOUND)


def test_an_ack_after_the_deadline_is_refused(machine: QueueStateMachine, log: Log) -> None:
    """Decision: the deadline passing makes the message ready again, whoever acks later."""
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    take_ids(machine, log, T)
    late = run_one(machine, log, Ack(T + ACK_TIMEOUT_S * 1000, "d", 1))
    assert rejected(late, RejectCode.MESSAGE_NOT_FOUND)
    assert machine.queue_info("d").ready == 1


def test_ack_removes_an_in_flight_message(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    take_ids(machine, log, T)
    assert run(machine, log, Ack(T, "d", 1), Ack(T, "d", 1)) == [
        Acked(1),
        Rejected(RejectCode.MESSAGE_NOT_FOUND, "message 1 not found in queue d"),
    ]


def test_nack_with_a_future_priority_is_a_retry_delay(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x", metadata={"try": "1"}))
    take_ids(machine, log, T)
    result = run_one(machine, log, Nack(T, "d", 1, priority=T_S + 60, metadata={"try": "2"}))
    assert result == Nacked(1, T_S + 60, {"try": "2"})
    assert take_ids(machine, log, T + 59_000) == []
    assert take_ids(machine, log, T + 60_000) == [1]
    assert machine.queue_info("d").nacked_total == 1


def test_nack_with_priority_zero_keeps_priority_and_metadata(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 3, "x", metadata={"a": "b"}))
    take_ids(machine, log, T)
    assert run_one(machine, log, Nack(T, "d", 1)) == Nacked(1, 3, {"a": "b"})
    assert take_ids(machine, log, T) == [1]


def test_touch_moves_the_deadline_to_now_plus_ack_timeout(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    take_ids(machine, log, T)
    touched_at = T + 20_000
    assert run_one(machine, log, Touch(touched_at, "d", 1)) == Touched(
        1, touched_at + ACK_TIMEOUT_S * 1000
    )
    assert take_ids(machine, log, T + ACK_TIMEOUT_S * 1000) == []  # the old deadline
    assert take_ids(machine, log, touched_at + ACK_TIMEOUT_S * 1000) == [1]


def test_update_priority_reorders_a_ready_message(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 5, "a"), NewMessage(2, 6, "b"))
    assert run_one(machine, log, UpdatePriority(T, "d", 2, 1)) == PriorityUpdated(2, 1)
    assert take_ids(machine, log, T, count=2) == [2, 1]


def test_update_priority_in_flight_keeps_the_deadline(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 5, "a"))
    take_ids(machine, log, T)
    run_one(machine, log, UpdatePriority(T, "d", 1, 9))
    stored = machine.get_message("d", 1)
    assert stored.in_flight and stored.deadline_ms == T + ACK_TIMEOUT_S * 1000
    assert stored.message.priority == 9


def test_delete_removes_ready_and_in_flight_messages(machine: QueueStateMachine, log: Log) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "a"), NewMessage(2, 0, "b"))
    take_ids(machine, log, T)
    assert run(machine, log, DeleteMessage(T, "d", 1), DeleteMessage(T, "d", 2)) == [
        MessageDeleted(1),
        MessageDeleted(2),
    ]
    assert rejected(run_one(machine, log, DeleteMessage(T, "d", 2)), RejectCode.MESSAGE_NOT_FOUND)
    info = machine.queue_info("d")
    assert (info.ready, info.unacked) == (0, 0)
    assert take_ids(machine, log, T + 10 * ACK_TIMEOUT_S * 1000) == []


# --- IDs and time --------------------------------------------------------------------------------


def test_a_repeated_id_answers_the_stored_message_without_a_copy(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "first"))
    again = put(machine, log, NewMessage(1, 9, "second"), NewMessage(2, 0, "new"))
    assert again.duplicates == 1
    assert again.messages[0] == Message(1, "default", 0, "first", None)
    info = machine.queue_info("d")
    assert (info.ready, info.enqueued_total) == (2, 2)


def test_the_id_floor_follows_generated_ids_but_not_far_future_ones(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    generated = IdGenerator(3, lambda: T).next_ids(2)
    put(machine, log, NewMessage(generated[1], 0, "a"), NewMessage((1 << 62) + 5, 0, "client"))
    assert machine.id_floor() == generated[1]
    assert IdGenerator(7, lambda: T - 10_000, floor=machine.id_floor()).next_id() > generated[1]


def test_the_state_clock_never_goes_back(machine: QueueStateMachine, log: Log) -> None:
    """A new leader whose clock lags stamps earlier times; deadlines must not move back."""
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "x"))
    take_ids(machine, log, T + 5_000)
    touched = run_one(machine, log, Touch(T, "d", 1))
    assert touched == Touched(1, T + 5_000 + ACK_TIMEOUT_S * 1000)
    assert machine.clock_ms() == T + 5_000


def test_the_planted_bug_hook_decides_expiry_by_the_node_clock(tmp_path: object) -> None:
    node_clock_ms = [T + 10 * ACK_TIMEOUT_S * 1000]  # this node's clock runs far ahead
    sm = open_machine(str(tmp_path) + "/s", redelivery_clock=lambda: node_clock_ms[0])  # type: ignore[operator]
    log = Log()
    delayed(sm, log)
    put(sm, log, NewMessage(1, 0, "x"))
    take_ids(sm, log, T)
    assert take_ids(sm, log, T + 1) == [1]  # redelivered by the node clock: the bug
    sm.close()


# --- queues --------------------------------------------------------------------------------------


def test_creating_an_existing_queue_of_the_same_type_changes_nothing(
    machine: QueueStateMachine, log: Log
) -> None:
    first = run_one(machine, log, CreateQueue(T, "f", QueueType.FAIR, 30, None, 2))
    again = run_one(machine, log, CreateQueue(T, "f", QueueType.FAIR, 99, Strategy.ROUND_ROBIN, 5))
    settings = QueueSettings(Strategy.ROUND_ROBIN, 2, 30)
    assert first == QueueCreated("f", QueueType.FAIR, settings, created=True)
    assert again == QueueCreated("f", QueueType.FAIR, settings, created=False)


def test_conflicting_creates_and_strategy_changes_are_rejected(
    machine: QueueStateMachine, log: Log
) -> None:
    run_one(machine, log, CreateQueue(T, "f", QueueType.FAIR, 30, Strategy.WEIGHTED))
    results = run(
        machine,
        log,
        CreateQueue(T, "f", QueueType.DELAYED, 30),
        CreateQueue(T, "f", QueueType.FAIR, 30, Strategy.ROUND_ROBIN),
        UpdateQueue(T, "f", strategy=Strategy.ROUND_ROBIN),
    )
    assert all(rejected(r, RejectCode.CONFLICT) for r in results)


def test_update_changes_only_the_given_settings(machine: QueueStateMachine, log: Log) -> None:
    run_one(machine, log, CreateQueue(T, "f", QueueType.FAIR, 30, None, 2))
    result = run_one(machine, log, UpdateQueue(T, "f", ack_timeout_s=45))
    assert result == QueueUpdated("f", QueueSettings(Strategy.ROUND_ROBIN, 2, 45))
    assert machine.queue_info("f").settings == result.settings


def test_every_command_on_an_unknown_queue_is_rejected(
    machine: QueueStateMachine, log: Log
) -> None:
    commands = [
        UpdateQueue(T, "x", max_unacked=1),
        DeleteQueue(T, "x"),
        Enqueue(T, "x", (NewMessage(1, 0, "c"),)),
        Dequeue(T, "x"),
        Ack(T, "x", 1),
        Nack(T, "x", 1),
        Touch(T, "x", 1),
        UpdatePriority(T, "x", 1, 1),
        DeleteMessage(T, "x", 1),
    ]
    assert all(rejected(r, RejectCode.QUEUE_NOT_FOUND) for r in run(machine, log, *commands))
    assert rejected(machine.get_message("x", 1), RejectCode.QUEUE_NOT_FOUND)
    assert machine.queue_info("x") is None


def test_deleting_a_queue_removes_its_messages_for_good(
    machine: QueueStateMachine, log: Log
) -> None:
    delayed(machine, log)
    put(machine, log, NewMessage(1, 0, "a"), NewMessage(2, 0, "b"))
    take_ids(machine, log, T)
    assert run_one(machine, log, DeleteQueue(T, "d")) == QueueDeleted("d", 2)
    delayed(machine, log)
    assert rejected(machine.get_message("d", 1), RejectCode.MESSAGE_NOT_FOUND)
    assert machine.queue_info("d").ready == 0
    dump = machine.logical_dump()
    assert dump["messages"] == [] and dump["inflight"] == [] and dump["delayed"] == []


def test_long_unicode_names_work_beyond_lmdbs_key_limit(
    machine: QueueStateMachine, log: Log
) -> None:
    """Names are up to 1024 characters (4 KiB of UTF-8); LMDB keys stop at 511 bytes."""
    name = "é" * QUEUE_NAME_CHARS_MAX
    group = "ü" * 500 + "." + "ß" * 500
    run_one(machine, log, CreateQueue(T, name, QueueType.FAIR, 30))
    run_one(machine, log, Enqueue(T, name, (NewMessage(1, 0, "x", group=group),)))
    result = run_one(machine, log, Dequeue(T, name))
    assert result.messages[0].group == group
    assert [q.name for q in machine.list_queues()] == [name]


def test_queues_are_listed_by_name(machine: QueueStateMachine, log: Log) -> None:
    for name in ("b", "a", "c"):
        run_one(machine, log, CreateQueue(T, name, QueueType.DELAYED, 30))
    assert [q.name for q in machine.list_queues()] == ["a", "b", "c"]
