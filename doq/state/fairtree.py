"""The fair queue's group tree: who gets the next turn, in O(depth x log n).

A group name is a dotted path (``tenant.project.user``); every level takes turns. Each path prefix
is an inner node; the messages of a group sit in a leaf under the inner node of the group's own full
path, so ``tenant`` (the group) and ``tenant.p1`` share tenant's single turn at the top. The root
(node 0) is the queue itself.

Every inner node keeps, in the ``active`` index, exactly its children that can deliver now (a leaf
with a ready message and in-flight count under ``max_unacked``; an inner node with an active child),
keyed by (load, child ID). Node IDs are handed out in first-seen order, so a child's ID is its place
in the rotation, and ``pointer`` is the child that had the last turn: the next turn goes to the
first active child after the pointer at the lowest load, wrapping around. Round robin keeps the
load at 0, so that is plain rotation in first-seen order; weighted uses the subtree's in-flight
count, so the turn goes to the child with the most headroom and ties rotate. Finding the next child
is one or two cursor seeks per level: no scan over groups, however many there are. (On a round
robin queue, a parent of few active children is read once per apply batch into a sorted list
that the batch keeps in step, and a turn is a bisect: the seeks were a third of a fair dequeue.)

A node exists while its subtree holds a message (ready or in flight). A group that has none left
is forgotten, and when messages for it arrive again it joins at the end of the rotation like a new
group (as the Go server's linked list does); this keeps the tree as small as the live groups.
"""

from __future__ import annotations

import bisect

from doq.state.batch import QueueState, WriteBatch
from doq.state.layout import (
    ACTIVE_KEY,
    ACTIVE_LOAD_PREFIX,
    NOT_INDEXED,
    PARENT_PREFIX,
    ROOT_NODE,
    U64,
    NodeKind,
    NodeRecord,
    name_digest,
)

GROUP_LEVELS_MAX = 8  # dots beyond the 7th stay inside the last level's label
ROTATION_CACHED_CHILDREN_MAX = 64  # a parent with more active children is turned by seeks
_PARENT_PREFIX_BYTES = PARENT_PREFIX.size
_LOAD_PREFIX_BYTES = ACTIVE_LOAD_PREFIX.size
_U64_UNPACK_FROM = U64.unpack_from


def group_path(group: str) -> list[str]:
    return group.split(".", GROUP_LEVELS_MAX - 1)


def create_root(b: WriteBatch, q: QueueState) -> None:
    b.add_node(q, ROOT_NODE, NodeRecord(NodeKind.INNER, ROOT_NODE, ""))


def leaf_for_group(b: WriteBatch, q: QueueState, group: str) -> int:
    """The leaf node of ``group``, created (with any missing inner nodes, top down) if needed."""
    leaf = q.leaves.get(group)
    if leaf is not None:
        return leaf
    leaf_key = q.prefix + name_digest(group)
    raw = b.txn.get(leaf_key, db=b.dbs.group_leaves)
    if raw is not None:
        leaf = U64.unpack(raw)[0]
    else:
        parent = ROOT_NODE
        for label in group_path(group):
            parent = _inner_child(b, q, parent, label)
        leaf = _new_node(b, q, NodeKind.LEAF, parent, group)
        b.node(q, parent).leaf = leaf
        b.txn.put(leaf_key, U64.pack(leaf), db=b.dbs.group_leaves)
    q.leaves[group] = leaf
    return leaf


def _inner_child(b: WriteBatch, q: QueueState, parent: int, label: str) -> int:
    key = PARENT_PREFIX.pack(q.queue_id, parent) + name_digest(label)
    raw = b.txn.get(key, db=b.dbs.tree_children)
    if raw is not None:
        return U64.unpack(raw)[0]
    child = _new_node(b, q, NodeKind.INNER, parent, label)
    b.txn.put(key, U64.pack(child), db=b.dbs.tree_children)
    return child


def _new_node(b: WriteBatch, q: QueueState, kind: NodeKind, parent: int, label: str) -> int:
    node_id = q.counters.next_node
    q.counters.next_node += 1
    b.add_node(q, node_id, NodeRecord(kind, parent, label))
    b.node(q, parent).children += 1
    return node_id


def leaf_changed(
    b: WriteBatch, q: QueueState, leaf: int, ready_delta: int, inflight_delta: int
) -> None:
    """Apply a change of the leaf's ready and in-flight counts and bring the ``active`` index up to
    date above it. The walk up stops at the first node whose entry in its parent's index stays as
    it is, since nothing above it can change then; except that a weighted queue's load is the
    subtree's in-flight count, so a change of that count goes all the way to the root."""
    weighted = q.is_weighted
    cap = q.record.max_unacked
    node_id = leaf
    node = q.nodes.get(leaf) or b.node(q, leaf)
    assert node.kind is NodeKind.LEAF, node
    node.ready += ready_delta
    node.inflight += inflight_delta
    assert node.ready >= 0 and node.inflight >= 0, node
    carry_load = weighted and inflight_delta != 0
    active = node.ready > 0 and (cap == 0 or node.inflight < cap)
    while True:
        wanted = (node.inflight if weighted else 0) if active else NOT_INDEXED
        if wanted == node.indexed_load and not carry_load:
            return
        parent = b.node(q, node.parent)
        if wanted != node.indexed_load:
            _reindex(b, q, node_id, node, parent, wanted)
        if node.parent == ROOT_NODE:
            if carry_load:
                parent.inflight += inflight_delta
            return
        node_id, node = node.parent, parent
        if carry_load:
            node.inflight += inflight_delta
            assert node.inflight >= 0, node
        active = node.active_children > 0


def _reindex(
    b: WriteBatch, q: QueueState, node_id: int, node: NodeRecord, parent: NodeRecord, wanted: int
) -> None:
    """Move the node's entry in its parent's active index to ``wanted`` (a load or NOT_INDEXED)."""
    was_active = node.indexed_load != NOT_INDEXED
    is_active = wanted != NOT_INDEXED
    if was_active:
        key = ACTIVE_KEY.pack(q.queue_id, node.parent, node.indexed_load, node_id)
        b.txn.delete(key, db=b.dbs.active)
    if is_active:
        b.txn.put(ACTIVE_KEY.pack(q.queue_id, node.parent, wanted, node_id), b"", db=b.dbs.active)
    node.indexed_load = wanted
    if was_active != is_active:
        parent.active_children += 1 if is_active else -1
        assert 0 <= parent.active_children <= parent.children, parent
        rotation = q.rotations.get(node.parent)
        if rotation is not None:  # round robin only: a weighted queue's loads are not 0
            if is_active:
                bisect.insort(rotation, node_id)
            else:
                rotation.remove(node_id)


def forget_if_empty(b: WriteBatch, q: QueueState, leaf: int) -> None:
    """Remove a leaf that holds no message, and the inner nodes left without children."""
    node = q.nodes.get(leaf) or b.node(q, leaf)
    if node.ready or node.inflight:
        return
    assert node.indexed_load == NOT_INDEXED, node
    b.txn.delete(q.prefix + name_digest(node.label), db=b.dbs.group_leaves)
    q.leaves.pop(node.label, None)
    b.node(q, node.parent).leaf = 0
    node_id = leaf
    while True:
        parent_id = node.parent
        b.drop_node(q, node_id)
        parent = b.node(q, parent_id)
        parent.children -= 1
        assert parent.children >= 0, parent
        if parent_id == ROOT_NODE or parent.children:
            return
        assert parent.indexed_load == NOT_INDEXED and not parent.inflight, parent
        key = PARENT_PREFIX.pack(q.queue_id, parent.parent) + name_digest(parent.label)
        b.txn.delete(key, db=b.dbs.tree_children)
        node_id, node = parent_id, parent


def next_leaf(b: WriteBatch, q: QueueState) -> int | None:
    """The leaf whose turn it is, moving the rotation pointers on the way down; None when no group
    can deliver. (The hottest function of a fair dequeue: node lookups go to the batch's cache
    first, and ``b.node`` only when a node is not there yet.)"""
    nodes = q.nodes
    node_id = ROOT_NODE
    node = nodes.get(ROOT_NODE) or b.node(q, ROOT_NODE)
    if not node.active_children:
        return None
    inner = NodeKind.INNER
    next_child = _next_child_round_robin if not q.is_weighted else _next_child_weighted
    while node.kind is inner:
        child = node.leaf
        if child and node.active_children == 1:
            leaf = nodes.get(child) or b.node(q, child)
            if leaf.indexed_load == NOT_INDEXED:
                child = next_child(b, q, node_id, node)
            # else the group's own messages (its leaf) are the only ones that can go
        else:
            child = next_child(b, q, node_id, node)
        node.pointer = child
        node_id, node = child, nodes.get(child) or b.node(q, child)
    return node_id


def _next_child_weighted(b: WriteBatch, q: QueueState, parent_id: int, parent: NodeRecord) -> int:
    """The first active child after the parent's pointer at the lowest load, wrapping around."""
    pointer = parent.pointer
    cursor = b.cursor(b.dbs.active)
    prefix = PARENT_PREFIX.pack(q.queue_id, parent_id)
    found = cursor.set_range(prefix)
    first = cursor.key()
    assert found and first[:_PARENT_PREFIX_BYTES] == prefix, ("no active child", parent_id)
    first_child = _U64_UNPACK_FROM(first, _LOAD_PREFIX_BYTES)[0]
    if first_child > pointer:
        return first_child  # the lowest load's first child already comes after the pointer
    load_prefix = first[:_LOAD_PREFIX_BYTES]
    if cursor.set_range(load_prefix + U64.pack(pointer + 1)):
        key = cursor.key()
        if key[:_LOAD_PREFIX_BYTES] == load_prefix:
            return _U64_UNPACK_FROM(key, _LOAD_PREFIX_BYTES)[0]
    return first_child  # wrap around to the first child at the lowest load


def _next_child_round_robin(
    b: WriteBatch, q: QueueState, parent_id: int, parent: NodeRecord
) -> int:
    """``_next_child_weighted`` when every load is 0 (round robin). A parent of at most
    ``ROTATION_CACHED_CHILDREN_MAX`` active children has them read once per batch into a sorted
    list (``QueueState.rotations``, kept in step by ``_reindex``), so each turn is a bisect; a
    larger one costs a seek a turn (and a second at the wrap), however many children it has."""
    pointer = parent.pointer
    rotation = q.rotations.get(parent_id)
    if rotation is None and parent.active_children <= ROTATION_CACHED_CHILDREN_MAX:
        rotation = q.rotations[parent_id] = _active_children(b, q, parent_id)
    if rotation is not None:
        assert len(rotation) == parent.active_children, (parent_id, rotation, parent)
        after = bisect.bisect_right(rotation, pointer)
        return rotation[after] if after < len(rotation) else rotation[0]
    cursor = b.cursor(b.dbs.active)
    load_prefix = ACTIVE_LOAD_PREFIX.pack(q.queue_id, parent_id, 0)
    if cursor.set_range(load_prefix + U64.pack(pointer + 1)):
        key = cursor.key()
        if key[:_LOAD_PREFIX_BYTES] == load_prefix:
            return _U64_UNPACK_FROM(key, _LOAD_PREFIX_BYTES)[0]
    found = cursor.set_range(load_prefix)
    first = cursor.key()
    assert found and first[:_LOAD_PREFIX_BYTES] == load_prefix, ("no active child", parent_id)
    return _U64_UNPACK_FROM(first, _LOAD_PREFIX_BYTES)[0]


def _active_children(b: WriteBatch, q: QueueState, parent_id: int) -> list[int]:
    """The parent's active children in ID order (round robin: every load is 0)."""
    cursor = b.cursor(b.dbs.active)
    load_prefix = ACTIVE_LOAD_PREFIX.pack(q.queue_id, parent_id, 0)
    children: list[int] = []
    if cursor.set_range(load_prefix):
        for key in cursor.iternext(keys=True, values=False):
            if key[:_LOAD_PREFIX_BYTES] != load_prefix:
                break
            children.append(_U64_UNPACK_FROM(key, _LOAD_PREFIX_BYTES)[0])
    return children


def reevaluate_leaves(b: WriteBatch, q: QueueState) -> None:
    """After ``max_unacked`` changed: re-decide every group's place in the active index. This is
    the one fair-queue operation linear in the number of groups; it runs only on a settings
    update."""
    node_ids = set(q.nodes)  # includes nodes created in this batch, not yet written
    cursor = b.txn.cursor(b.dbs.nodes)
    if cursor.set_range(q.prefix):
        for key in cursor.iternext(keys=True, values=False):
            if key[: len(q.prefix)] != q.prefix:
                break
            node_ids.add(U64.unpack_from(key, len(q.prefix))[0])
    for node_id in sorted(node_ids - q.dropped_nodes):
        if b.node(q, node_id).kind is NodeKind.LEAF:
            leaf_changed(b, q, node_id, 0, 0)
