"""One apply batch: an LMDB write transaction plus write-back caches of the hot records.

Nearly every command reads and changes the same few records: its queue's counters, the fair-tree
nodes on its group's path, the state's clock. Decoding and re-encoding them for each command would
cost more than the index updates themselves, so a batch keeps them as Python objects and writes
each once, when the batch commits (in the same transaction, with the applied index). The caches
live and die with the transaction, so an aborted batch leaves nothing behind.
"""

from __future__ import annotations

import attrs
import lmdb

from doq.commands import QueueType, Strategy
from doq.state.layout import (
    META_APPLIED,
    META_CLOCK_MS,
    META_ID_FLOOR,
    META_NEXT_QUEUE_ID,
    NODE_KEY,
    QUEUE_ID,
    U32,
    U64,
    U64_PAIR,
    Counters,
    NodeRecord,
    QueueRecord,
    name_digest,
    pack_counters,
    pack_node,
    pack_queue,
    unpack_counters,
    unpack_node,
    unpack_queue,
)

FIRST_QUEUE_ID = 1


@attrs.frozen
class Dbs:
    """The named databases of one environment (handles are valid for the environment's life)."""

    meta: lmdb._Database
    queue_names: lmdb._Database
    queues: lmdb._Database
    counters: lmdb._Database
    messages: lmdb._Database
    delayed: lmdb._Database
    fair: lmdb._Database
    inflight: lmdb._Database
    nodes: lmdb._Database
    tree_children: lmdb._Database
    group_leaves: lmdb._Database
    active: lmdb._Database
    node_numbers: lmdb._Database


@attrs.define
class Meta:
    """The state-wide values in the meta database."""

    clock_ms: int = 0
    id_floor: int = 0
    next_queue_id: int = FIRST_QUEUE_ID


def read_meta(txn: lmdb.Transaction, dbs: Dbs) -> Meta:
    clock = txn.get(META_CLOCK_MS, db=dbs.meta)
    floor = txn.get(META_ID_FLOOR, db=dbs.meta)
    next_queue = txn.get(META_NEXT_QUEUE_ID, db=dbs.meta)
    return Meta(
        clock_ms=U64.unpack(clock)[0] if clock else 0,
        id_floor=U64.unpack(floor)[0] if floor else 0,
        next_queue_id=U32.unpack(next_queue)[0] if next_queue else FIRST_QUEUE_ID,
    )


def read_applied(txn: lmdb.Transaction, dbs: Dbs) -> tuple[int, int]:
    applied = txn.get(META_APPLIED, db=dbs.meta)
    if applied is None:
        return (0, 0)
    index, term = U64_PAIR.unpack(applied)
    return (index, term)


NO_DEADLINE_MS = 1 << 64  # above every deadline: nothing is in flight


@attrs.define(eq=False)
class QueueState:
    """A queue as one batch sees it: its record, its counters and the fair-tree nodes it touched.
    ``deadline_floor_ms`` is a lower bound of the earliest in-flight deadline (None: unknown), so
    that most commands learn that nothing has expired without touching the in-flight index."""

    record: QueueRecord
    counters: Counters
    prefix: bytes  # the queue ID, big-endian: the first 4 bytes of every key of this queue
    record_dirty: bool = False
    deleted: bool = False
    nodes: dict[int, NodeRecord] = attrs.field(factory=dict)
    dropped_nodes: set[int] = attrs.field(factory=set)
    leaves: dict[str, int] = attrs.field(factory=dict)  # group name -> leaf node, this batch
    # parent node -> its active children, sorted (round robin; doq/state/fairtree.py)
    rotations: dict[int, list[int]] = attrs.field(factory=dict)
    deadline_floor_ms: int | None = None
    # Fixed for the queue's life (type and strategy never change), kept flat for the hot paths.
    queue_id: int = attrs.field(init=False)
    is_fair: bool = attrs.field(init=False)
    is_weighted: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.queue_id = self.record.queue_id
        self.is_fair = self.record.type is QueueType.FAIR
        self.is_weighted = self.record.strategy is Strategy.WEIGHTED


class WriteBatch:
    def __init__(self, env: lmdb.Environment, dbs: Dbs) -> None:
        self.txn = env.begin(write=True)
        self.dbs = dbs
        self.meta = read_meta(self.txn, dbs)
        self._queues: dict[str, QueueState | None] = {}
        self._touched: list[QueueState] = []
        self._cursors: dict[lmdb._Database, lmdb.Cursor] = {}

    # --- queues ----------------------------------------------------------------------------------
    def queue(self, name: str) -> QueueState | None:
        if name in self._queues:
            return self._queues[name]
        raw_id = self.txn.get(name_digest(name), db=self.dbs.queue_names)
        state = None
        if raw_id is not None:
            record = unpack_queue(self.txn.get(raw_id, db=self.dbs.queues))
            assert record.name == name, (record.name, name)
            counters = unpack_counters(self.txn.get(raw_id, db=self.dbs.counters))
            state = QueueState(record, counters, raw_id)
            self._touched.append(state)
        self._queues[name] = state
        return state

    def add_queue(self, record: QueueRecord) -> QueueState:
        assert self.queue(record.name) is None, record.name
        prefix = QUEUE_ID.pack(record.queue_id)
        self.txn.put(name_digest(record.name), prefix, db=self.dbs.queue_names)
        state = QueueState(record, Counters(), prefix, record_dirty=True)
        self._queues[record.name] = state
        self._touched.append(state)
        return state

    def forget_queue(self, state: QueueState) -> None:
        """The queue's keys are gone (the caller deleted them): drop what the batch cached."""
        state.deleted = True
        self.txn.delete(name_digest(state.record.name), db=self.dbs.queue_names)
        self._queues[state.record.name] = None

    def allocate_queue_id(self) -> int:
        queue_id = self.meta.next_queue_id
        self.meta.next_queue_id += 1
        return queue_id

    # --- fair-tree nodes -------------------------------------------------------------------------
    def node(self, q: QueueState, node_id: int) -> NodeRecord:
        node = q.nodes.get(node_id)
        if node is None:
            raw = self.txn.get(NODE_KEY.pack(q.queue_id, node_id), db=self.dbs.nodes)
            assert raw is not None, ("missing fair-tree node", q.record.name, node_id)
            node = unpack_node(raw)
            q.nodes[node_id] = node
        return node

    def add_node(self, q: QueueState, node_id: int, node: NodeRecord) -> None:
        assert node_id not in q.nodes, node_id
        q.nodes[node_id] = node
        q.dropped_nodes.discard(node_id)

    def drop_node(self, q: QueueState, node_id: int) -> None:
        del q.nodes[node_id]
        q.dropped_nodes.add(node_id)

    # --- cursors ---------------------------------------------------------------------------------
    def cursor(self, db: lmdb._Database) -> lmdb.Cursor:
        """One cursor per database per batch: creating a cursor costs more than positioning one."""
        cursor = self._cursors.get(db)
        if cursor is None:
            cursor = self.txn.cursor(db)
            self._cursors[db] = cursor
        return cursor

    # --- end of batch ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every cached record back and forget the caches (the transaction stays open)."""
        txn, dbs = self.txn, self.dbs
        for q in self._touched:
            if q.deleted:
                continue
            if q.record_dirty:
                txn.put(q.prefix, pack_queue(q.record), db=dbs.queues)
            txn.put(q.prefix, pack_counters(q.counters), db=dbs.counters)
            for node_id, node in q.nodes.items():
                txn.put(NODE_KEY.pack(q.queue_id, node_id), pack_node(node), db=dbs.nodes)
            for node_id in q.dropped_nodes:
                txn.delete(NODE_KEY.pack(q.queue_id, node_id), db=dbs.nodes)
        self._queues.clear()
        self._touched.clear()
        txn.put(META_CLOCK_MS, U64.pack(self.meta.clock_ms), db=dbs.meta)
        txn.put(META_ID_FLOOR, U64.pack(self.meta.id_floor), db=dbs.meta)
        txn.put(META_NEXT_QUEUE_ID, U32.pack(self.meta.next_queue_id), db=dbs.meta)

    def reload(self) -> None:
        """After the whole state was replaced inside this transaction: start from what is there."""
        self._queues.clear()
        self._touched.clear()
        self._cursors.clear()
        self.meta = read_meta(self.txn, self.dbs)

    def commit(self, applied: tuple[int, int]) -> None:
        self.flush()
        self.txn.put(META_APPLIED, U64_PAIR.pack(*applied), db=self.dbs.meta)
        self._cursors.clear()
        self.txn.commit()

    def abort(self) -> None:
        self._cursors.clear()
        self.txn.abort()
