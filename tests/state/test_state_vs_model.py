"""The LMDB state machine against the naive model, under random command batches.

Every result of every command must equal the model's (rejections by their code), and after every
step the queues' counts, settings and every message (priority, metadata, in flight, deadline) must
equal the model's. Between batches the test also restarts the environment, restores a snapshot
into a fresh one, and applies a ``RestoreState`` of the current state: none of them may change
anything the model can see.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from doq.commands import (
    Ack,
    CommandDecodeError,
    DeleteMessage,
    Dequeue,
    Nack,
    RestoreState,
    Touch,
    UpdatePriority,
    decode_command,
)
from doq.state.results import RejectCode, Rejected, StateRestored

from .helpers import Log, open_machine
from .model import Model
from .strategies import (
    IN_CI,
    MESSAGE_IDS,
    QUEUE_NAMES,
    START_MS,
    batches,
    batches_with_deletes,
    create_queue,
    metadata,
    priorities,
)

STATEFUL_EXAMPLES = 60 if IN_CI else 150
STATEFUL_STEPS = 40


def comparable(result: Any) -> Any:
    """Rejections compare by code: the detail is prose for people."""
    if isinstance(result, Rejected):
        return ("rejected", result.code)
    return result


class StateAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="doq-state-"))
        self.generation = 0
        self.sm = open_machine(str(self.tmp / "state0"))
        self.model = Model()
        self.log = Log()
        self.now_ms = START_MS

    def teardown(self) -> None:
        self.sm.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(creates=st.tuples(*(create_queue for _ in QUEUE_NAMES)))
    def create_every_queue(self, creates: tuple[Any, ...]) -> None:
        """Start with every queue there (of a random type), so most commands find their queue."""
        self._apply([attrs.evolve(c, name=n) for c, n in zip(creates, QUEUE_NAMES)])

    @rule(batch=batches)
    def apply_batch(self, batch: list[tuple[Any, int]]) -> None:
        self._apply([attrs.evolve(cmd, ts_ms=self.now_ms + offset) for cmd, offset in batch])

    @rule(batch=batches, elapsed_ms=st.integers(0, 8_000))
    def time_passes_then_apply_batch(self, batch: list[tuple[Any, int]], elapsed_ms: int) -> None:
        self.now_ms += elapsed_ms
        self.apply_batch(batch)

    @rule(batch=batches_with_deletes)
    def apply_batch_that_may_delete_queues(self, batch: list[tuple[Any, int]]) -> None:
        self.apply_batch(batch)

    @rule(data=st.data())
    def settle_a_message_in_flight(self, data: st.DataObject) -> None:
        """Ack, nack, touch, re-prioritize or delete a message that is in flight: random IDs
        rarely hit one, and these paths matter most."""
        in_flight = sorted(
            (name, m.id)
            for name, q in self.model.queues.items()
            for m in q.messages.values()
            if m.in_flight
        )
        if not in_flight:
            queue = data.draw(st.sampled_from(QUEUE_NAMES))
            self._apply([Dequeue(self.now_ms, queue, count=data.draw(st.integers(1, 3)))])
            return
        queue, message_id = data.draw(st.sampled_from(in_flight))
        make = data.draw(
            st.sampled_from(
                [
                    lambda: Ack(0, queue, message_id),
                    lambda: Nack(0, queue, message_id, data.draw(priorities), data.draw(metadata)),
                    lambda: Touch(0, queue, message_id),
                    lambda: UpdatePriority(0, queue, message_id, data.draw(priorities)),
                    lambda: DeleteMessage(0, queue, message_id),
                ]
            )
        )
        offset = data.draw(st.integers(-500, 9_000))  # before and after its deadline
        self._apply([attrs.evolve(make(), ts_ms=self.now_ms + offset)])

    def _apply(self, commands: list[Any]) -> None:
        expected = [comparable(self.model.apply(cmd)) for cmd in commands]
        actual = [comparable(r) for r in self.sm.apply(self.log.entries(*commands))]
        assert actual == expected

    @rule(data=st.binary(max_size=24))
    def poisoned_entry(self, data: bytes) -> None:
        try:
            command = decode_command(data)
        except CommandDecodeError:
            command = None
        [result] = self.sm.apply(self.log.entries(data))
        if command is None:
            assert isinstance(result, Rejected) and result.code is RejectCode.INVALID
        else:  # random bytes that happen to be a valid command are a valid command
            assert comparable(result) == comparable(self.model.apply(command))

    @rule(kind=st.sampled_from(("restart", "snapshot", "restore_command")))
    def disruption(self, kind: str) -> None:
        """Between batches: a restart, a snapshot installed in a fresh state, or a RestoreState
        command of the current state. None of them may change anything the model can see."""
        {
            "restart": self.restart,
            "snapshot": self.snapshot_into_fresh_state,
            "restore_command": self.restore_command_of_current_state,
        }[kind]()

    def restart(self) -> None:
        before = self.sm.logical_dump()
        path = self._path()
        self.sm.close()
        self.sm = open_machine(path)
        assert self.sm.logical_dump() == before

    def snapshot_into_fresh_state(self) -> None:
        snapshot = str(self.tmp / f"snap{self.generation}")
        index_term = self.sm.snapshot(snapshot)
        before = self.sm.logical_dump()
        self.sm.close()
        self.generation += 1
        self.sm = open_machine(self._path())
        assert self.sm.restore(snapshot) == index_term
        assert self.sm.last_applied() == index_term
        assert self.sm.logical_dump() == before

    def restore_command_of_current_state(self) -> None:
        snapshot = self.tmp / "current"
        index, term = self.sm.snapshot(str(snapshot))
        before = self.sm.logical_dump()
        [result] = self.sm.apply(self.log.entries(RestoreState(self.now_ms, snapshot.read_bytes())))
        assert result == StateRestored(index, term)
        self.model.clock_ms = max(self.model.clock_ms, self.now_ms)
        after = self.sm.logical_dump()
        assert after["applied"] == (self.log.index, self.log.term)
        for key in ("applied", "clock_ms"):
            del before[key], after[key]
        assert after == before

    def _path(self) -> str:
        return str(self.tmp / f"state{self.generation}")

    @invariant()
    def same_queues_and_messages(self) -> None:
        for name in QUEUE_NAMES:
            assert self.sm.queue_info(name) == self.model.info(name)
        for name in self.model.queues:
            for message_id in MESSAGE_IDS:
                stored = self.sm.get_message(name, message_id)
                expected = self.model.stored(name, message_id)
                if expected is None:
                    assert isinstance(stored, Rejected)
                    assert stored.code is RejectCode.MESSAGE_NOT_FOUND
                else:
                    assert stored == expected

    @invariant()
    def same_clock_and_id_floor(self) -> None:
        assert self.sm.clock_ms() == self.model.clock_ms
        assert self.sm.id_floor() == self.model.id_floor


StateAgainstModel.TestCase.settings = settings(
    max_examples=STATEFUL_EXAMPLES,
    stateful_step_count=STATEFUL_STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_state_machine_agrees_with_naive_model = StateAgainstModel.TestCase
