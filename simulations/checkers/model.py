"""The sequential specification of one queue, against which client histories are checked.

It is deliberately naive (tuples and scans) and says only what API.md promises, leaving open what
a client cannot know:
- Time is not modelled. An in-flight message returns to ready when its deadline passes, which
  the state decides by command timestamps the client never sees; so before every operation that
  addresses messages (dequeue, ack, nack, touch, update-priority) any prefix of the in-flight
  messages, in deadline order, may have expired. Deadline order is delivery-or-touch order (a
  queue's ack timeout is fixed and the state's clock never goes back). When leases really end is
  checked exactly, in command time, by the queue safety checker on the committed log.
- A restore (``RestoreState``) replaces every queue at once; each queue's history sees it as the
  queue becoming what the backup held (simulations/checkers/backups.py).
- A delayed queue delivers the smallest (priority, ID) first (the workload's priorities are small,
  so always due). A fair queue delivers the smallest (priority, ID) of some group that has a
  ready message and is under its ``max_unacked`` cap: which group's turn it is (round robin over
  dotted levels, or weighted) is not modelled, only that it is one that may deliver.
A state is a hashable tuple so that the search can remember the states it has seen:
(exists, messages sorted by ID as (id, priority, group, content), in-flight IDs in deadline
order, enqueued total, acked total).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import attrs

Message = tuple[int, int, str, str]  # (id, priority, group, content)
State = tuple[bool, tuple[Message, ...], tuple[int, ...], int, int]
Transition = tuple[tuple, State]

INITIAL: State = (False, (), (), 0, 0)
NOT_FOUND_QUEUE = ("rejected", "queue_not_found")
NOT_FOUND_MESSAGE = ("rejected", "message_not_found")
EMPTY = ("rejected", "queue_empty")
RESTORED = ("restored",)


@attrs.frozen
class QueueKind:
    fair: bool
    max_unacked: int  # per group, fair queues only; 0 is unlimited


@attrs.frozen
class Call:
    """One operation as the model sees it. ``id`` is known for every operation but a dequeue
    (for an enqueue it comes from the result, when the leader chose it)."""

    kind: str  # create, delete, enqueue, dequeue, ack, nack, touch, update_priority, info, final,
    # restore
    id: int = 0
    priority: int = 0
    group: str = "default"
    content: str = ""
    ack: bool = False
    restored: State | None = None  # restore: the queue's state in the backup


def transitions(kind: QueueKind, state: State, call: Call) -> list[Transition]:
    """Every (result key, next state) the specification allows for ``call`` in ``state``."""
    exists = state[0]
    if call.kind == "create":
        return [(("created", not exists), (True, *state[1:]))]  # type: ignore[list-item]
    if call.kind == "final":
        return [(final_key(state), state)]
    if call.kind == "restore":  # the queue becomes what the backup held, whatever it was
        assert call.restored is not None
        return [(RESTORED, call.restored)]
    if not exists:
        return [(NOT_FOUND_QUEUE, state)]
    if call.kind == "delete":  # every message goes; a queue created again starts afresh
        return [(("deleted", len(state[1])), INITIAL)]
    if call.kind == "enqueue":
        return [_enqueue(state, call)]
    if call.kind == "info":
        return [(("info", len(state[1]), state[3], state[4]), state)]
    if call.kind == "dequeue" and not kind.fair:
        return _delayed_dequeues(state, call)
    handler = _HANDLERS[call.kind]
    out = []
    for expired in _expiries(state):
        out.extend(handler(kind, expired, call))
    return out


def final_key(state: State) -> tuple:
    in_flight = set(state[2])
    stored = tuple((m[0], m[1], m[3], m[0] in in_flight) for m in state[1])
    return ("final", state[0], stored)


def _expiries(state: State) -> Iterator[State]:
    exists, messages, in_flight, enqueued, acked = state
    for k in range(len(in_flight) + 1):
        yield (exists, messages, in_flight[k:], enqueued, acked)


def _find(messages: tuple[Message, ...], message_id: int) -> int:
    """Where ``message_id`` is in ``messages`` (sorted by ID, IDs distinct), or -1."""
    i = bisect.bisect_left(messages, message_id, key=_message_id)
    return i if i < len(messages) and messages[i][0] == message_id else -1


def _message_id(message: Message) -> int:
    return message[0]


def _enqueue(state: State, call: Call) -> Transition:
    exists, messages, in_flight, enqueued, acked = state
    i = bisect.bisect_left(messages, call.id, key=_message_id)
    if i < len(messages) and messages[i][0] == call.id:
        return (("enqueued", call.id, messages[i][3]), state)  # the stored one, unchanged
    message = (call.id, call.priority, call.group, call.content)
    stored = (*messages[:i], message, *messages[i:])
    return (("enqueued", call.id, call.content), (exists, stored, in_flight, enqueued + 1, acked))


def _delayed_dequeues(state: State, call: Call) -> list[Transition]:
    """A delayed queue's dequeue after each prefix of the in-flight messages has expired, in
    the order of ``_expiries``, without a scan of the messages per prefix: expiring one more
    message only adds it to the ready ones, so the smallest (priority, ID) ready is the smaller of
    the previous one and the message that expired."""
    exists, messages, in_flight, enqueued, acked = state
    by_id = {m[0]: m for m in messages}
    busy = set(in_flight)
    best = min(((m[1], m[0]) for m in messages if m[0] not in busy), default=None)
    out = []
    rest, rest_of = messages, -1  # the messages but the one delivered, built once per message
    for k in range(len(in_flight) + 1):
        if k:
            m = by_id[in_flight[k - 1]]
            if best is None or (m[1], m[0]) < best:
                best = (m[1], m[0])
        flying = in_flight[k:]
        if best is None:
            out.append((EMPTY, (exists, messages, flying, enqueued, acked)))
            continue
        m = by_id[best[1]]
        key = ("dequeued", m[0], m[3], m[1], m[2])
        if call.ack:
            if rest_of != m[0]:
                i = _find(messages, m[0])
                rest, rest_of = (*messages[:i], *messages[i + 1 :]), m[0]
            out.append((key, (exists, rest, flying, enqueued, acked + 1)))
        else:
            out.append((key, (exists, messages, (*flying, m[0]), enqueued, acked)))
    return out


def _dequeue(kind: QueueKind, state: State, call: Call) -> list[Transition]:
    exists, messages, in_flight, enqueued, acked = state
    busy = set(in_flight)
    ready = [m for m in messages if m[0] not in busy]
    if kind.fair:
        held: dict[str, int] = {}
        for m in messages:
            if m[0] in busy:
                held[m[2]] = held.get(m[2], 0) + 1
        heads: dict[str, Message] = {}  # each group's next message: smallest (priority, id)
        for m in ready:
            capped = kind.max_unacked and held.get(m[2], 0) >= kind.max_unacked
            head = heads.get(m[2])
            if not capped and (head is None or (m[1], m[0]) < (head[1], head[0])):
                heads[m[2]] = m
        choices = list(heads.values())
    else:
        choices = [min(ready, key=lambda m: (m[1], m[0]))] if ready else []
    if not choices:
        return [(EMPTY, state)]
    out = []
    for m in choices:
        key = ("dequeued", m[0], m[3], m[1], m[2])
        if call.ack:
            rest = tuple(x for x in messages if x[0] != m[0])
            out.append((key, (exists, rest, in_flight, enqueued, acked + 1)))
        else:
            out.append((key, (exists, messages, (*in_flight, m[0]), enqueued, acked)))
    return out


def _ack(_kind: QueueKind, state: State, call: Call) -> list[Transition]:
    exists, messages, in_flight, enqueued, acked = state
    if call.id not in in_flight:
        return [(NOT_FOUND_MESSAGE, state)]
    rest = tuple(m for m in messages if m[0] != call.id)
    flying = tuple(i for i in in_flight if i != call.id)
    return [(("acked", call.id), (exists, rest, flying, enqueued, acked + 1))]


def _nack(_kind: QueueKind, state: State, call: Call) -> list[Transition]:
    exists, messages, in_flight, enqueued, acked = state
    if call.id not in in_flight:
        return [(NOT_FOUND_MESSAGE, state)]
    i = _find(messages, call.id)
    m = messages[i]
    priority = call.priority or m[1]
    stored = (*messages[:i], (m[0], priority, m[2], m[3]), *messages[i + 1 :])
    flying = tuple(x for x in in_flight if x != call.id)
    return [(("nacked", call.id, priority), (exists, stored, flying, enqueued, acked))]


def _touch(_kind: QueueKind, state: State, call: Call) -> list[Transition]:
    exists, messages, in_flight, enqueued, acked = state
    if call.id not in in_flight:
        return [(NOT_FOUND_MESSAGE, state)]
    flying = (*(x for x in in_flight if x != call.id), call.id)  # its deadline is now the latest
    return [(("touched", call.id), (exists, messages, flying, enqueued, acked))]


def _update_priority(_kind: QueueKind, state: State, call: Call) -> list[Transition]:
    exists, messages, in_flight, enqueued, acked = state
    i = _find(messages, call.id)
    if i < 0:
        return [(NOT_FOUND_MESSAGE, state)]
    m = messages[i]
    stored = (*messages[:i], (m[0], call.priority, m[2], m[3]), *messages[i + 1 :])
    return [(("priority", call.id, call.priority), (exists, stored, in_flight, enqueued, acked))]


_HANDLERS = {
    "dequeue": _dequeue,
    "ack": _ack,
    "nack": _nack,
    "touch": _touch,
    "update_priority": _update_priority,
}
