"""Message IDs: the leader's snowflake-like generator of unsigned 64-bit IDs.

Message IDs are assigned before a command is proposed (docs/design.md, rule 4), so replicas never
invent one. Layout, most significant bit first: 1 zero bit, 41 bits of milliseconds since
``ID_EPOCH_MS`` (about 69 years), 10 bits of node number, 12 bits of sequence within a millisecond.
IDs therefore increase with time and fit a signed 64-bit integer too.

Unique by construction, not by luck: the node number is assigned through the replicated log
(``AssignNodeNumber``: the lowest number never assigned before, doq/state/identity.py), so two
nodes never share one, and a node that becomes leader raises its generator's floor to the
replicated ID floor (``QueueStateMachine.id_floor()``): the largest stored ID, and every ID a
leader reserved (``ReserveIds``) before it handed it out through ``POST /API/v1/ids``. So a new
leader, or this node restarted with its clock stepped back, never hands out an ID at or below one
already stored or handed out (doq/service.py).

The generator is pure given the time source handed to it (the simulator hands it virtual time) and
keeps its own promise even when that clock steps back: every ID is strictly larger than the one
before.
"""

from __future__ import annotations

from collections.abc import Callable

ID_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, in Unix milliseconds
ID_TIME_BITS = 41
ID_NODE_BITS = 10
ID_SEQUENCE_BITS = 12
ID_NODE_MAX = (1 << ID_NODE_BITS) - 1
ID_SEQUENCE_MAX = (1 << ID_SEQUENCE_BITS) - 1
ID_TIME_MS_MAX = (1 << ID_TIME_BITS) - 1  # milliseconds after ID_EPOCH_MS
ID_MAX = (1 << (ID_TIME_BITS + ID_NODE_BITS + ID_SEQUENCE_BITS)) - 1
IDS_PER_CALL_MAX = 100_000  # a bound on one next_ids() call, far above the API's 1000

_NODE_SHIFT = ID_SEQUENCE_BITS
_TIME_SHIFT = ID_SEQUENCE_BITS + ID_NODE_BITS


class IdSpaceExhaustedError(RuntimeError):
    """The 41-bit time field has run out (in 2093, or after a floor near ``ID_MAX``)."""


def compose_id(time_ms: int, node: int, sequence: int) -> int:
    """The ID for ``time_ms`` milliseconds after ``ID_EPOCH_MS``, node number and sequence."""
    assert 0 <= time_ms <= ID_TIME_MS_MAX, time_ms
    assert 0 <= node <= ID_NODE_MAX, node
    assert 0 <= sequence <= ID_SEQUENCE_MAX, sequence
    return (time_ms << _TIME_SHIFT) | (node << _NODE_SHIFT) | sequence


def id_unix_ms(message_id: int) -> int:
    """The Unix time in milliseconds that a generated ID carries (meaningless for an ID a client
    made up in another layout; see ``QueueStateMachine`` for how the state treats those)."""
    return (message_id >> _TIME_SHIFT) + ID_EPOCH_MS


class IdGenerator:
    """Strictly increasing IDs for one node. ``clock_ms`` returns Unix milliseconds."""

    def __init__(self, node: int, clock_ms: Callable[[], int], floor: int = 0) -> None:
        if not 0 <= node <= ID_NODE_MAX:
            raise ValueError(f"node number must be in 0..{ID_NODE_MAX}, got {node}")
        self._node = node
        self._clock_ms = clock_ms
        self._last_time_ms = 0  # the time field of the last ID handed out
        self._sequence = -1  # the sequence of the last ID handed out in that millisecond
        self._last_id = -1
        self.raise_floor(floor)

    @property
    def last_id(self) -> int:
        """The last ID handed out (or the floor), -1 when none."""
        return self._last_id

    def raise_floor(self, floor: int) -> None:
        """Make every later ID larger than ``floor`` (call on becoming leader with the state's
        ``id_floor()``). Lowering is a no-op: the generator never goes back."""
        if not 0 <= floor <= ID_MAX:
            raise ValueError(f"floor must be in 0..{ID_MAX}, got {floor}")
        if floor <= self._last_id:
            return
        # Continue in the floor's own millisecond with a sequence past it when the node field
        # allows; otherwise start the next millisecond. Either way the next ID exceeds the floor.
        floor_time_ms = floor >> _TIME_SHIFT
        floor_node = (floor >> _NODE_SHIFT) & ID_NODE_MAX
        floor_sequence = floor & ID_SEQUENCE_MAX
        if self._node > floor_node:
            self._last_time_ms, self._sequence = floor_time_ms, -1
        elif self._node == floor_node:
            self._last_time_ms, self._sequence = floor_time_ms, floor_sequence
        else:
            self._last_time_ms, self._sequence = floor_time_ms + 1, -1
        self._last_id = floor

    def next_id(self) -> int:
        now_ms = self._clock_ms() - ID_EPOCH_MS
        if now_ms > self._last_time_ms:
            self._last_time_ms, self._sequence = now_ms, 0
        elif self._sequence < ID_SEQUENCE_MAX:
            # Same millisecond, or the clock stepped back: keep counting in the last millisecond.
            self._sequence += 1
        else:
            # 4096 IDs in one millisecond: borrow the next one rather than repeat or block.
            self._last_time_ms, self._sequence = self._last_time_ms + 1, 0
        if self._last_time_ms > ID_TIME_MS_MAX:
            raise IdSpaceExhaustedError(f"no ID left after {self._last_id}")
        message_id = compose_id(self._last_time_ms, self._node, self._sequence)
        assert message_id > self._last_id, (message_id, self._last_id)
        self._last_id = message_id
        return message_id

    def next_ids(self, count: int) -> list[int]:
        if not 0 <= count <= IDS_PER_CALL_MAX:
            raise ValueError(f"count must be in 0..{IDS_PER_CALL_MAX}, got {count}")
        return [self.next_id() for _ in range(count)]
