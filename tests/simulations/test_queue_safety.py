"""The queue safety checks on the committed stream: leases in command time, acked messages,
acknowledged enqueues, and replicas that must agree entry by entry."""

from __future__ import annotations

import itertools

import pytest

from doq.commands import (
    Ack,
    CreateQueue,
    Dequeue,
    Enqueue,
    NewMessage,
    QueueType,
    RestoreState,
    encode_command,
)
from doq.state.machine import QueueStateMachine
from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    Message,
    QueueCreated,
    QueueSettings,
    RejectCode,
    Rejected,
    StateRestored,
)
from raft_zmq.core.types import Entry, EntryKind
from simulations.checkers.backups import BackupReader
from simulations.checkers.queue_safety import QueueSafety, ReplicaAgreement
from simulations.checkers.raft_safety import Violation

T0_MS = 1_750_000_000_000
ACK_TIMEOUT_S = 2


class Stream:
    """Feeds (command, result) pairs to a QueueSafety as consecutive log entries."""

    def __init__(self) -> None:
        self.safety = QueueSafety(BackupReader())
        self._index = itertools.count(1)

    def feed(self, command, result) -> None:
        entry = Entry(next(self._index), 1, EntryKind.NORMAL, encode_command(command))
        self.safety.on_entry(entry, result)


def message(message_id: int) -> Message:
    return Message(message_id, "default", 0, f"m{message_id}", None)


@pytest.fixture
def stream() -> Stream:
    s = Stream()
    settings = QueueSettings(None, 0, ACK_TIMEOUT_S)
    s.feed(
        CreateQueue(T0_MS, "q", QueueType.DELAYED, ACK_TIMEOUT_S),
        QueueCreated("q", QueueType.DELAYED, settings, True),
    )
    s.feed(Enqueue(T0_MS, "q", (NewMessage(1, 0, "m1"),)), Enqueued((message(1),), duplicates=0))
    return s


def test_a_message_delivered_again_within_its_lease_is_a_violation(stream):
    stream.feed(Dequeue(T0_MS, "q"), Dequeued((message(1),)))
    with pytest.raises(Violation, match="one consumer per lease"):
        stream.feed(Dequeue(T0_MS + 1_999, "q"), Dequeued((message(1),)))


def test_a_message_delivered_again_once_its_lease_ended_is_fine(stream):
    stream.feed(Dequeue(T0_MS, "q"), Dequeued((message(1),)))
    stream.feed(Dequeue(T0_MS + ACK_TIMEOUT_S * 1000, "q"), Dequeued((message(1),)))


def test_the_lease_is_judged_by_the_state_clock_not_by_a_lagging_stamp(stream):
    stream.feed(Dequeue(T0_MS + 5_000, "q"), Dequeued((message(1),)))
    # A leader whose clock lags stamps an earlier time: the state's clock does not go back.
    with pytest.raises(Violation, match="one consumer per lease"):
        stream.feed(Dequeue(T0_MS + 6_000, "q"), Dequeued((message(1),)))


def test_an_acked_message_that_comes_back_is_a_violation(stream):
    stream.feed(Dequeue(T0_MS, "q"), Dequeued((message(1),)))
    stream.feed(Ack(T0_MS, "q", 1), Acked(1))
    with pytest.raises(Violation, match="acked message came back"):
        stream.feed(Dequeue(T0_MS + 10_000, "q"), Dequeued((message(1),)))


def test_an_id_enqueued_again_after_its_ack_is_a_new_message(stream):
    stream.feed(Dequeue(T0_MS, "q", ack=True), Dequeued((message(1),)))
    stream.feed(
        Enqueue(T0_MS, "q", (NewMessage(1, 0, "m1"),)), Enqueued((message(1),), duplicates=0)
    )
    stream.feed(Dequeue(T0_MS, "q"), Dequeued((message(1),)))


def test_an_acknowledged_enqueue_must_be_stored_or_settled_at_the_end(stream):
    stream.safety.check_acknowledged([("q", 1, 7)], stored={("q", 1)})
    with pytest.raises(Violation, match="acknowledged enqueue lost"):
        stream.safety.check_acknowledged([("q", 1, 7)], stored=set())
    stream.feed(Dequeue(T0_MS, "q", ack=True), Dequeued((message(1),)))
    stream.safety.check_acknowledged([("q", 1, 7)], stored=set())


def test_an_acknowledged_enqueue_the_log_never_created_is_lost(stream):
    with pytest.raises(Violation, match="no committed entry created it"):
        stream.safety.check_acknowledged([("q", 99, 8)], stored={("q", 99)})


def test_replicas_must_return_the_same_result_for_an_entry():
    agreement = ReplicaAgreement()
    entry = Entry(1, 1, EntryKind.NORMAL, b"x")
    fresh = agreement.on_applied("node-0", [entry], [Acked(1)], now_us=5)
    assert fresh == [(entry, Acked(1))]
    assert agreement.on_applied("node-1", [entry], [Acked(1)], now_us=9) == []
    refused = Rejected(RejectCode.MESSAGE_NOT_FOUND, "not in flight")
    with pytest.raises(Violation, match="replicas agree"):
        agreement.on_applied("node-2", [entry], [refused], now_us=12)


def test_replicas_must_hold_the_same_state_at_the_same_index():
    agreement = ReplicaAgreement()
    agreement.on_state("node-0", 16, "abc")
    agreement.on_state("node-1", 16, "abc")
    agreement.on_state("node-1", 32, "def")
    with pytest.raises(Violation, match="different queue states at applied index 16"):
        agreement.on_state("node-2", 16, "abd")


def test_a_restore_brings_back_the_backups_messages_and_leases_and_nothing_else(stream, tmp_path):
    state = QueueStateMachine(str(tmp_path / "state"), sync=False)
    backed_up = [
        CreateQueue(T0_MS, "q", QueueType.DELAYED, ACK_TIMEOUT_S),
        Enqueue(T0_MS, "q", (NewMessage(1, 0, "m1"),)),
        Dequeue(T0_MS, "q"),  # in flight until T0_MS + 2 s in the backup
    ]
    state.apply(
        [Entry(i + 1, 1, EntryKind.NORMAL, encode_command(c)) for i, c in enumerate(backed_up)]
    )
    state.snapshot(str(tmp_path / "backup.snap"))
    backup = (tmp_path / "backup.snap").read_bytes()
    state.close()
    stream.feed(Dequeue(T0_MS, "q"), Dequeued((message(1),)))
    stream.feed(Ack(T0_MS, "q", 1), Acked(1))
    stream.feed(
        Enqueue(T0_MS, "q", (NewMessage(2, 0, "m2"),)), Enqueued((message(2),), duplicates=0)
    )
    stream.feed(RestoreState(T0_MS + 500, backup), StateRestored(3, 1))
    stream.safety.check_acknowledged([("q", 2, 9)], stored={("q", 1)})  # the restore removed it
    with pytest.raises(Violation, match="one consumer per lease"):  # the backup's lease holds
        stream.feed(Dequeue(T0_MS + 1_000, "q"), Dequeued((message(1),)))
    stream.feed(
        Dequeue(T0_MS + 2_000, "q"), Dequeued((message(1),))
    )  # acked since: not "came back"
