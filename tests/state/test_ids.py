"""The leader's ID generator: strictly increasing, unique per node, never below its floor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doq.ids import (
    ID_EPOCH_MS,
    ID_MAX,
    ID_NODE_MAX,
    ID_SEQUENCE_MAX,
    IdGenerator,
    IdSpaceExhaustedError,
    compose_id,
    id_unix_ms,
)

NOW_MS = 1_750_000_000_000


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def test_an_id_carries_its_time_node_and_sequence() -> None:
    generator = IdGenerator(5, FakeClock(NOW_MS))
    first = generator.next_id()
    assert first == compose_id(NOW_MS - ID_EPOCH_MS, 5, 0)
    assert id_unix_ms(first) == NOW_MS
    assert generator.next_id() == first + 1  # same millisecond: next sequence number


def test_ids_fit_a_signed_64_bit_integer() -> None:
    assert ID_MAX == (1 << 63) - 1


@given(steps_ms=st.lists(st.integers(-5_000, 5_000), min_size=1, max_size=200))
def test_ids_strictly_increase_even_when_the_clock_steps_back(steps_ms: list[int]) -> None:
    clock = FakeClock(NOW_MS)
    generator = IdGenerator(3, clock)
    last = -1
    for step in steps_ms:
        clock.now_ms += step
        current = generator.next_id()
        assert current > last
        assert (current >> 12) & ID_NODE_MAX == 3  # the node field is never disturbed
        last = current


def test_a_full_millisecond_borrows_the_next_rather_than_repeating() -> None:
    generator = IdGenerator(1, FakeClock(NOW_MS))
    ids = generator.next_ids(ID_SEQUENCE_MAX + 2)
    assert len(set(ids)) == len(ids)
    assert id_unix_ms(ids[-1]) == NOW_MS + 1


def test_two_nodes_never_collide_in_the_same_millisecond() -> None:
    clock = FakeClock(NOW_MS)
    a, b = IdGenerator(1, clock), IdGenerator(2, clock)
    assert not set(a.next_ids(100)) & set(b.next_ids(100))


@pytest.mark.parametrize("floor_node", [0, 4, 9])
def test_a_new_leader_with_a_lagging_clock_starts_above_the_floor(floor_node: int) -> None:
    predecessor_id = compose_id(NOW_MS - ID_EPOCH_MS, floor_node, 17)
    generator = IdGenerator(4, FakeClock(NOW_MS - 60_000), floor=predecessor_id)
    assert generator.next_id() > predecessor_id
    generator.raise_floor(0)  # lowering is a no-op
    assert generator.next_id() > predecessor_id


def test_a_floor_at_the_end_of_the_id_space_is_an_error_not_a_wrap() -> None:
    generator = IdGenerator(0, FakeClock(NOW_MS), floor=ID_MAX)
    with pytest.raises(IdSpaceExhaustedError):
        generator.next_id()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="node"):
        IdGenerator(ID_NODE_MAX + 1, FakeClock(NOW_MS))
    with pytest.raises(ValueError, match="floor"):
        IdGenerator(0, FakeClock(NOW_MS), floor=-1)
    with pytest.raises(ValueError, match="count"):
        IdGenerator(0, FakeClock(NOW_MS)).next_ids(-1)
