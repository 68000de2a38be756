"""A batch of N operations leaves the same state and answers as the same N single operations
(enqueue, dequeue with count, ack, nack, touch).

Two fresh states get the same random history; then one applies a batch command (Enqueue of many,
AckMany, NackMany, TouchMany) and the other the single commands one by one, all at the same time.
Every item's answer and the whole logical state must be equal.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doq.commands import (
    Ack,
    AckMany,
    CreateQueue,
    Dequeue,
    Enqueue,
    InFlightItem,
    Nack,
    NackItem,
    NackMany,
    QueueType,
    Touch,
    TouchMany,
)
from doq.state.results import Dequeued, Enqueued, ManyResults, RejectCode, Rejected

from .helpers import Log, open_machine
from .strategies import (
    IN_CI,
    MESSAGE_IDS,
    START_MS,
    deliveries,
    metadata,
    new_message,
    priorities,
)

EXAMPLES = 40 if IN_CI else 100
QUEUE = "q"

history = st.lists(
    st.one_of(
        st.builds(
            Enqueue,
            st.just(0),
            st.just(QUEUE),
            st.lists(new_message, min_size=1, max_size=4).map(tuple),
        ),
        st.builds(Dequeue, st.just(0), st.just(QUEUE), st.integers(1, 4), st.just(False)),
    ),
    max_size=8,
)
ids = st.sampled_from(MESSAGE_IDS)
batch_ops = st.one_of(
    st.lists(new_message, min_size=1, max_size=8).map(lambda m: ("enqueue", tuple(m))),
    st.tuples(st.integers(1, 8), st.booleans()).map(lambda c: ("dequeue", c)),
    st.lists(st.builds(InFlightItem, ids, deliveries), min_size=1, max_size=8).map(
        lambda i: ("ack", tuple(i))
    ),
    st.lists(st.builds(InFlightItem, ids, deliveries), min_size=1, max_size=8).map(
        lambda i: ("touch", tuple(i))
    ),
    st.lists(
        st.builds(NackItem, ids, st.just(0) | priorities, metadata, deliveries),
        min_size=1,
        max_size=8,
    ).map(lambda i: ("nack", tuple(i))),
)


def as_batch(kind: str, items: tuple, ts: int):
    if kind == "enqueue":
        return Enqueue(ts, QUEUE, items)
    if kind == "dequeue":
        count, ack = items
        return Dequeue(ts, QUEUE, count, ack)
    if kind == "ack":
        return AckMany(ts, QUEUE, items)
    if kind == "touch":
        return TouchMany(ts, QUEUE, items)
    return NackMany(ts, QUEUE, items)


def as_singles(kind: str, items: tuple, ts: int) -> list:
    if kind == "enqueue":
        return [Enqueue(ts, QUEUE, (m,)) for m in items]
    if kind == "dequeue":
        count, ack = items
        return [Dequeue(ts, QUEUE, 1, ack) for _ in range(count)]
    if kind == "ack":
        return [Ack(ts, QUEUE, i.id, i.delivery) for i in items]
    if kind == "touch":
        return [Touch(ts, QUEUE, i.id, i.delivery) for i in items]
    return [Nack(ts, QUEUE, n.id, n.priority, n.metadata, n.delivery) for n in items]


def item_answers(kind: str, result, count: int = 0) -> list:
    """The batch's answer per item, in the single commands' terms: a Dequeue of ``count`` is
    the messages one by one, then an empty queue for each it could not deliver."""
    if kind == "dequeue":
        delivered = list(result.messages) if isinstance(result, Dequeued) else []
        empty = Rejected(RejectCode.QUEUE_EMPTY, "")
        return [Dequeued((m,)) for m in delivered] + [empty] * (count - len(delivered))
    if kind == "enqueue":
        assert isinstance(result, Enqueued)
        duplicate_at = set(result.duplicate_at)
        return [
            Enqueued((m,), int(i in duplicate_at), (0,) if i in duplicate_at else ())
            for i, m in enumerate(result.messages)
        ]
    assert isinstance(result, ManyResults)
    return list(result.results)


def comparable(result):
    return ("rejected", result.code) if isinstance(result, Rejected) else result


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queue_type=st.sampled_from(QueueType),
    max_unacked=st.integers(0, 3),
    setup=history,
    steps=st.lists(st.tuples(batch_ops, st.integers(0, 3_000)), min_size=1, max_size=4),
)
def test_a_batch_is_the_same_as_its_single_operations(
    tmp_path_factory, queue_type, max_unacked, setup, steps
):
    root = Path(tmp_path_factory.mktemp("batch"))
    batched, single = open_machine(str(root / "b")), open_machine(str(root / "s"))
    try:
        logs = (Log(), Log())
        create = CreateQueue(START_MS, QUEUE, queue_type, 2, None, max_unacked)
        for sm, log in ((batched, logs[0]), (single, logs[1])):
            sm.apply(log.entries(create))
            for n, cmd in enumerate(setup):
                sm.apply(log.entries(_at(cmd, START_MS + n)))
        now = START_MS + len(setup)
        for (kind, items), advance_ms in steps:
            now += advance_ms
            (batch_result,) = batched.apply(logs[0].entries(as_batch(kind, items, now)))
            single_results = single.apply(logs[1].entries(*as_singles(kind, items, now)))
            count = items[0] if kind == "dequeue" else 0
            assert [comparable(r) for r in item_answers(kind, batch_result, count)] == [
                comparable(r) for r in single_results
            ], kind
            assert _state(batched) == _state(single)
    finally:
        batched.close()
        single.close()


def _at(cmd, ts: int):
    return attrs.evolve(cmd, ts_ms=ts)


def _state(sm) -> dict:
    """Everything but the applied index (the batch took fewer log entries)."""
    dump = sm.logical_dump()
    del dump["applied"]
    return dump


def test_a_batch_to_an_unknown_queue_is_one_rejection(tmp_path):
    sm = open_machine(str(tmp_path / "s"))
    try:
        log = Log()
        for cmd in (
            AckMany(START_MS, "nope", (InFlightItem(1),)),
            NackMany(START_MS, "nope", (NackItem(1),)),
            TouchMany(START_MS, "nope", (InFlightItem(1),)),
        ):
            (result,) = sm.apply(log.entries(cmd))
            assert isinstance(result, Rejected) and result.code is RejectCode.QUEUE_NOT_FOUND
    finally:
        sm.close()
