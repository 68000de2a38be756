"""Hypothesis strategies for random command sequences over a few queues, groups and IDs.

The pools are small on purpose: a few queue names make create/delete conflicts common, a few IDs
make duplicate enqueues and acks of unknown or ready messages common, and the group names include
dotted paths three levels deep. Commands are drawn with ``ts_ms=0``; the tests stamp them.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

from doq.commands import (
    Ack,
    Command,
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

IN_CI = os.environ.get("CI") == "true"
START_MS = 1_750_000_000_000  # June 2025: later than the ID epoch, so small IDs raise the floor
START_S = START_MS // 1000

QUEUE_NAMES = ("q0", "q1", "q2")
GROUPS = ("default", "a", "b", "a.x", "a.y", "a.x.p", "b.z", "c")
# Small IDs (generated-looking, they raise the ID floor) and two that a client's own scheme might
# use (far in the future: the floor must ignore them).
MESSAGE_IDS = (*range(10), 1 << 62, (1 << 64) - 1)

queue_names = st.sampled_from(QUEUE_NAMES)
message_ids = st.sampled_from(MESSAGE_IDS)
# Small priorities (fair ordering, delayed and always due) and Unix seconds around the test clock
# (a delayed queue's future deliveries and retry delays).
priorities = st.one_of(st.integers(0, 3), st.integers(START_S - 5, START_S + 30))
metadata = st.none() | st.dictionaries(st.sampled_from("kv"), st.sampled_from("12"), max_size=2)
ack_timeouts_s = st.integers(1, 8)
max_unackeds = st.integers(0, 3)

create_queue = st.builds(
    CreateQueue,
    ts_ms=st.just(0),
    name=queue_names,
    type=st.sampled_from(QueueType),
    ack_timeout_s=ack_timeouts_s,
    strategy=st.none() | st.sampled_from(Strategy),
    max_unacked=max_unackeds,
)
update_queue = st.builds(
    UpdateQueue,
    ts_ms=st.just(0),
    name=queue_names,
    strategy=st.none() | st.sampled_from(Strategy),
    max_unacked=st.none() | max_unackeds,
    ack_timeout_s=st.none() | ack_timeouts_s,
)
delete_queue = st.builds(DeleteQueue, ts_ms=st.just(0), name=queue_names)
new_message = st.builds(
    NewMessage,
    id=message_ids,
    priority=priorities,
    content=st.sampled_from(("x", "y", "zz")),
    group=st.sampled_from(GROUPS),
    metadata=metadata,
)
enqueue = st.builds(
    Enqueue,
    ts_ms=st.just(0),
    queue=queue_names,
    messages=st.lists(new_message, min_size=1, max_size=4).map(tuple),
)
dequeue = st.builds(
    Dequeue, ts_ms=st.just(0), queue=queue_names, count=st.integers(1, 3), ack=st.booleans()
)
# A receipt's delivery number: mostly none (the Go behaviour), else one of the first few.
deliveries = st.none() | st.integers(0, 3)
ack = st.builds(Ack, ts_ms=st.just(0), queue=queue_names, id=message_ids, delivery=deliveries)
nack = st.builds(
    Nack,
    ts_ms=st.just(0),
    queue=queue_names,
    id=message_ids,
    priority=priorities,
    metadata=metadata,
    delivery=deliveries,
)
touch = st.builds(Touch, ts_ms=st.just(0), queue=queue_names, id=message_ids, delivery=deliveries)
update_priority = st.builds(
    UpdatePriority, ts_ms=st.just(0), queue=queue_names, id=message_ids, priority=priorities
)
delete_message = st.builds(DeleteMessage, ts_ms=st.just(0), queue=queue_names, id=message_ids)

# Repeats weigh the choice: mostly traffic, sometimes settings, rarely a deleted queue.
_WEIGHTED_CHOICES = (
    (enqueue, 6),
    (dequeue, 6),
    (ack, 2),
    (nack, 1),
    (touch, 1),
    (update_priority, 1),
    (delete_message, 1),
    (create_queue, 1),
    (update_queue, 1),
)
commands: st.SearchStrategy[Command] = st.one_of(
    *(strategy for strategy, weight in _WEIGHTED_CHOICES for _ in range(weight))
)
rare_commands: st.SearchStrategy[Command] = st.one_of(commands, delete_queue)

# A batch of commands and, for each, how far its stamp lies from the test clock: mostly ahead,
# sometimes behind (a new leader's lagging clock, which the state must not follow backwards).
stamp_offsets_ms = st.integers(-2_000, 400)
batches = st.lists(st.tuples(commands, stamp_offsets_ms), min_size=1, max_size=6)
# One in a few batches may also delete a queue.
batches_with_deletes = st.lists(st.tuples(rare_commands, stamp_offsets_ms), min_size=1, max_size=6)
