"""A deliberately naive model of the queue state: plain dicts and lists, scanned on every call.

It implements API.md's semantics and docs/state-machine.md's decisions the obvious way (compute the
eligible groups by looking at every message, sort, take the first after the pointer), so that the
property tests can hold the LMDB state machine's indexes to it. Nothing here is shared with
``doq.state`` except the command and result types.
"""

from __future__ import annotations

from typing import Any

import attrs

from doq.commands import (
    DEFAULT_GROUP,
    Ack,
    CreateQueue,
    DeleteMessage,
    DeleteQueue,
    Dequeue,
    Enqueue,
    Nack,
    QueueType,
    Strategy,
    Touch,
    UpdatePriority,
    UpdateQueue,
)
from doq.ids import id_unix_ms
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
    QueueInfo,
    QueueSettings,
    QueueUpdated,
    RejectCode,
    Rejected,
    StoredMessage,
    Touched,
)

LEVELS = 8  # the documented depth of the group tree
FLOOR_FUTURE_MS = 60_000


@attrs.define
class MMessage:
    id: int
    group: str
    priority: int
    content: str
    metadata: dict[str, str] | None
    in_flight: bool = False
    deadline_ms: int = 0
    deliveries: int = 0

    def value(self) -> Message:
        return Message(
            self.id, self.group, self.priority, self.content, self.metadata, self.deliveries
        )


@attrs.define
class MQueue:
    name: str
    type: QueueType
    strategy: Strategy | None
    max_unacked: int
    ack_timeout_s: int
    messages: dict[int, MMessage] = attrs.field(factory=dict)
    counts: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(("enqueued", "dequeued", "acked", "nacked", "expired"), 0)
    )
    # The fair tree: ("inner", path) and ("leaf", group) -> first-seen number; pointers by path.
    nodes: dict[tuple[str, Any], int] = attrs.field(factory=dict)
    pointers: dict[tuple[str, ...], int] = attrs.field(factory=dict)
    next_node: int = 1

    def settings(self) -> QueueSettings:
        return QueueSettings(self.strategy, self.max_unacked, self.ack_timeout_s)


def path_of(group: str) -> tuple[str, ...]:
    return tuple(group.split(".", LEVELS - 1))


class Model:
    def __init__(self) -> None:
        self.queues: dict[str, MQueue] = {}
        self.clock_ms = 0
        self.id_floor = 0

    # --- entry point ---------------------------------------------------------------------------
    def apply(self, cmd: Any, expiry_ms: int | None = None) -> Any:
        self.clock_ms = max(self.clock_ms, cmd.ts_ms)
        now = self.clock_ms
        expiry = now if expiry_ms is None else expiry_ms
        if isinstance(cmd, CreateQueue):
            return self._create(cmd)
        if isinstance(cmd, UpdateQueue):
            return self._update(cmd)
        if isinstance(cmd, DeleteQueue):
            q = self.queues.pop(cmd.name, None)
            if q is None:
                return Rejected(RejectCode.QUEUE_NOT_FOUND, "")
            return QueueDeleted(cmd.name, len(q.messages))
        q = self.queues.get(cmd.queue)
        if q is None:
            return Rejected(RejectCode.QUEUE_NOT_FOUND, "")
        if isinstance(cmd, Enqueue):
            return self._enqueue(q, cmd, now)
        self._expire(q, expiry)
        if isinstance(cmd, Dequeue):
            return self._dequeue(q, cmd, now)
        m = q.messages.get(cmd.id)
        if m is None:
            return Rejected(RejectCode.MESSAGE_NOT_FOUND, "")
        if isinstance(cmd, UpdatePriority):
            m.priority = cmd.priority
            return PriorityUpdated(cmd.id, cmd.priority)
        if isinstance(cmd, DeleteMessage):
            self._remove(q, m)
            return MessageDeleted(cmd.id)
        if cmd.delivery is not None and (not m.in_flight or m.deliveries != cmd.delivery):
            return Rejected(RejectCode.STALE_RECEIPT, "")
        if not m.in_flight:
            return Rejected(RejectCode.MESSAGE_NOT_FOUND, "")
        if isinstance(cmd, Ack):
            self._remove(q, m)
            q.counts["acked"] += 1
            return Acked(cmd.id)
        if isinstance(cmd, Nack):
            m.in_flight, m.deadline_ms = False, 0
            m.priority = cmd.priority or m.priority
            if cmd.metadata is not None:
                m.metadata = cmd.metadata
            q.counts["nacked"] += 1
            return Nacked(m.id, m.priority, m.metadata)
        assert isinstance(cmd, Touch)
        m.deadline_ms = now + q.ack_timeout_s * 1000
        return Touched(m.id, m.deadline_ms)

    # --- queues --------------------------------------------------------------------------------
    def _create(self, cmd: CreateQueue) -> Any:
        q = self.queues.get(cmd.name)
        if q is not None:
            if q.type != cmd.type:
                return Rejected(RejectCode.CONFLICT, "")
            if cmd.type == QueueType.FAIR and cmd.strategy not in (None, q.strategy):
                return Rejected(RejectCode.CONFLICT, "")
            return QueueCreated(cmd.name, q.type, q.settings(), False)
        strategy = None
        if cmd.type == QueueType.FAIR:
            strategy = cmd.strategy or Strategy.ROUND_ROBIN
        q = MQueue(cmd.name, cmd.type, strategy, cmd.max_unacked, cmd.ack_timeout_s)
        self.queues[cmd.name] = q
        return QueueCreated(cmd.name, q.type, q.settings(), True)

    def _update(self, cmd: UpdateQueue) -> Any:
        q = self.queues.get(cmd.name)
        if q is None:
            return Rejected(RejectCode.QUEUE_NOT_FOUND, "")
        if cmd.strategy is not None and cmd.strategy != q.strategy:
            return Rejected(RejectCode.CONFLICT, "")
        if cmd.max_unacked is not None:
            q.max_unacked = cmd.max_unacked
        if cmd.ack_timeout_s is not None:
            q.ack_timeout_s = cmd.ack_timeout_s
        return QueueUpdated(cmd.name, q.settings())

    # --- messages ------------------------------------------------------------------------------
    def _enqueue(self, q: MQueue, cmd: Enqueue, now: int) -> Any:
        out, duplicate_at = [], []
        for position, new in enumerate(cmd.messages):
            if new.id in q.messages:
                out.append(q.messages[new.id].value())
                duplicate_at.append(position)
                continue
            group = new.group if q.type == QueueType.FAIR else DEFAULT_GROUP
            if q.type == QueueType.FAIR:
                self._ensure_nodes(q, group)
            m = MMessage(new.id, group, new.priority, new.content, new.metadata)
            q.messages[new.id] = m
            q.counts["enqueued"] += 1
            if new.id > self.id_floor and id_unix_ms(new.id) <= now + FLOOR_FUTURE_MS:
                self.id_floor = new.id
            out.append(m.value())
        return Enqueued(tuple(out), len(duplicate_at), tuple(duplicate_at))

    def _expire(self, q: MQueue, now: int) -> None:
        due = [m for m in q.messages.values() if m.in_flight and m.deadline_ms <= now]
        for m in sorted(due, key=lambda m: (m.deadline_ms, m.id)):
            m.in_flight, m.deadline_ms = False, 0
            q.counts["expired"] += 1

    def _dequeue(self, q: MQueue, cmd: Dequeue, now: int) -> Any:
        out = []
        for _ in range(cmd.count):
            m = self._pick_fair(q) if q.type == QueueType.FAIR else self._pick_delayed(q, now)
            if m is None:
                break
            q.counts["dequeued"] += 1
            m.deliveries += 1
            out.append(m.value())
            if cmd.ack:
                q.counts["acked"] += 1
                self._remove(q, m)
            else:
                m.in_flight, m.deadline_ms = True, now + q.ack_timeout_s * 1000
        if not out:
            return Rejected(RejectCode.QUEUE_EMPTY, "")
        return Dequeued(tuple(out))

    def _pick_delayed(self, q: MQueue, now: int) -> MMessage | None:
        ready = sorted((m.priority, m.id) for m in q.messages.values() if not m.in_flight)
        if not ready or ready[0][0] > now // 1000:
            return None
        return q.messages[ready[0][1]]

    def _remove(self, q: MQueue, m: MMessage) -> None:
        del q.messages[m.id]
        if q.type == QueueType.FAIR:
            self._prune_nodes(q, m.group)

    # --- the fair tree, naively ----------------------------------------------------------------
    def _ensure_nodes(self, q: MQueue, group: str) -> None:
        path = path_of(group)
        for depth in range(1, len(path) + 1):
            key = ("inner", path[:depth])
            if key not in q.nodes:
                q.nodes[key] = q.next_node
                q.next_node += 1
        if ("leaf", group) not in q.nodes:
            q.nodes[("leaf", group)] = q.next_node
            q.next_node += 1

    def _prune_nodes(self, q: MQueue, group: str) -> None:
        if any(m.group == group for m in q.messages.values()):
            return
        del q.nodes[("leaf", group)]
        path = path_of(group)
        for depth in range(len(path), 0, -1):
            if self._children(q, path[:depth]):
                return
            del q.nodes[("inner", path[:depth])]
            q.pointers.pop(path[:depth], None)

    def _children(self, q: MQueue, path: tuple[str, ...]) -> list[tuple[str, Any]]:
        out = []
        for kind, name in q.nodes:
            if kind == "leaf" and path_of(name) == path:
                out.append((kind, name))
            if kind == "inner" and len(name) == len(path) + 1 and name[:-1] == path:
                out.append((kind, name))
        return out

    def _groups_under(self, q: MQueue, node: tuple[str, Any]) -> list[str]:
        kind, name = node
        if kind == "leaf":
            return [name]
        return [g for k, g in q.nodes if k == "leaf" and path_of(g)[: len(name)] == name]

    def _eligible(self, q: MQueue, group: str) -> bool:
        ready = [m for m in q.messages.values() if m.group == group and not m.in_flight]
        in_flight = sum(1 for m in q.messages.values() if m.group == group and m.in_flight)
        return bool(ready) and (q.max_unacked == 0 or in_flight < q.max_unacked)

    def _load(self, q: MQueue, node: tuple[str, Any]) -> int:
        if q.strategy != Strategy.WEIGHTED:
            return 0
        groups = set(self._groups_under(q, node))
        return sum(1 for m in q.messages.values() if m.group in groups and m.in_flight)

    def _pick_fair(self, q: MQueue) -> MMessage | None:
        path: tuple[str, ...] = ()
        node: tuple[str, Any] = ("inner", ())
        while node[0] == "inner":
            active = [
                c
                for c in self._children(q, path)
                if any(self._eligible(q, g) for g in self._groups_under(q, c))
            ]
            if not active:
                assert path == (), "an inner node with no eligible group was entered"
                return None
            lowest = min(self._load(q, c) for c in active)
            tied = sorted((q.nodes[c], c) for c in active if self._load(q, c) == lowest)
            pointer = q.pointers.get(path, 0)
            after = [t for t in tied if t[0] > pointer]
            number, node = after[0] if after else tied[0]
            q.pointers[path] = number
            if node[0] == "inner":
                path = node[1]
        ready = [m for m in q.messages.values() if m.group == node[1] and not m.in_flight]
        return min(ready, key=lambda m: (m.priority, m.id))

    # --- reads ---------------------------------------------------------------------------------
    def info(self, name: str) -> QueueInfo | None:
        q = self.queues.get(name)
        if q is None:
            return None
        in_flight = sum(1 for m in q.messages.values() if m.in_flight)
        return QueueInfo(
            name=q.name,
            type=q.type,
            settings=q.settings(),
            ready=len(q.messages) - in_flight,
            unacked=in_flight,
            enqueued_total=q.counts["enqueued"],
            dequeued_total=q.counts["dequeued"],
            acked_total=q.counts["acked"],
            nacked_total=q.counts["nacked"],
            expired_total=q.counts["expired"],
        )

    def stored(self, name: str, message_id: int) -> StoredMessage | None:
        m = self.queues[name].messages.get(message_id)
        if m is None:
            return None
        return StoredMessage(m.value(), m.in_flight, m.deadline_ms if m.in_flight else None)
