"""How the queue state is laid out in LMDB: the named databases, their keys and their records.

Keys are big-endian so that LMDB's byte order is the numeric order, which makes each index's first
key the next thing to deliver. Every per-queue key starts with the queue's small integer ID (4
bytes): names are up to 1024 characters and LMDB keys at most 511 bytes, so names appear only in
values, and in the two name indexes as a 16-byte BLAKE2b digest.

| database      | key                                   | value                         |
|---------------|---------------------------------------|-------------------------------|
| meta          | b"applied", b"clock_ms", ...          | fixed-width integers          |
| queue_names   | digest(name)                          | queue ID                      |
| queues        | queue                                 | QueueRecord                   |
| counters      | queue                                 | Counters                      |
| messages      | queue, message ID                     | MessageRecord (head + body)   |
| delayed       | queue, priority, message ID           | empty (ready, delayed queue)  |
| fair          | queue, leaf, priority, message ID     | empty (ready, fair queue)     |
| inflight      | queue, deadline ms, message ID        | empty                         |
| nodes         | queue, node                           | NodeRecord (fair tree)        |
| tree_children | queue, parent node, digest(label)     | child node                    |
| group_leaves  | queue, digest(group name)             | leaf node                     |
| active        | queue, parent node, load, child node  | empty (children with work)    |
| node_numbers  | node ID (UTF-8)                       | its ID node number (u16)      |

A message record is a fixed-width head (``MESSAGE_HEAD``: in flight, leaf, priority, deadline,
deliveries) followed by its body, the msgpack of (group, content, metadata). What changes while a
message moves (the head) is then read and rewritten with ``struct`` alone: an ack reads only the
head, a delivery rewrites the head in front of the body's unchanged bytes. Format 1 stored the
whole record as one msgpack array; ``doq/state/migrate.py`` rewrites such records on open and
when a format-1 snapshot is loaded.
"""

from __future__ import annotations

import enum
import hashlib
import struct

import attrs
import msgspec

from doq.commands import QueueType, Strategy

STATE_FORMAT_VERSION = 2  # 2: message records are a struct head and a msgpack body
STATE_FORMAT_VERSION_V1 = 1  # message records as one msgpack array (migrated on open)
NAME_DIGEST_BYTES = 16  # BLAKE2b-128: collisions are out of reach even for a hostile client
LMDB_NAMED_DBS_MAX = 16
LMDB_READERS_MAX = 126  # fixed by the first opener: the node and its snapshot process alike

DB_NAMES: tuple[str, ...] = (
    "meta",
    "queue_names",
    "queues",
    "counters",
    "messages",
    "delayed",
    "fair",
    "inflight",
    "nodes",
    "tree_children",
    "group_leaves",
    "active",
    "node_numbers",  # last: a snapshot names databases by position, older ones lack this one
)

META_FORMAT = b"format"
META_APPLIED = b"applied"
META_CLOCK_MS = b"clock_ms"  # the largest command time applied: the state's clock never goes back
META_ID_FLOOR = b"id_floor"  # the largest plausible generated message ID stored so far
META_NEXT_QUEUE_ID = b"next_queue_id"

ROOT_NODE = 0  # every fair queue's tree root; real nodes count up from 1
NOT_INDEXED = -1  # a node's indexed_load when it is absent from its parent's active index

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
U64_PAIR = struct.Struct(">QQ")
QUEUE_ID = U32
MESSAGE_KEY = struct.Struct(">IQ")  # queue, message ID
DELAYED_KEY = struct.Struct(">IQQ")  # queue, priority, message ID
FAIR_KEY = struct.Struct(">IQQQ")  # queue, leaf, priority, message ID
FAIR_LEAF_PREFIX = struct.Struct(">IQ")  # queue, leaf
INFLIGHT_KEY = struct.Struct(">IQQ")  # queue, deadline ms, message ID
NODE_KEY = struct.Struct(">IQ")  # queue, node
PARENT_PREFIX = struct.Struct(">IQ")  # queue, parent node: prefix of tree_children and active
ACTIVE_KEY = struct.Struct(">IQQQ")  # queue, parent node, load, child node
ACTIVE_LOAD_PREFIX = struct.Struct(">IQQ")  # queue, parent node, load


def name_digest(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=NAME_DIGEST_BYTES).digest()


class NodeKind(enum.IntEnum):
    INNER = 0  # one level of a dotted group path; its children take turns
    LEAF = 1  # the messages of exactly one group, a child of the inner node of the same path


@attrs.frozen
class QueueRecord:
    queue_id: int
    name: str
    type: QueueType
    strategy: Strategy | None
    max_unacked: int
    ack_timeout_s: int


@attrs.define
class Counters:
    """Per-queue counts, plus the queue's node ID allocator (node IDs are first-seen order)."""

    ready: int = 0
    unacked: int = 0
    enqueued: int = 0
    dequeued: int = 0
    acked: int = 0
    nacked: int = 0
    expired: int = 0
    next_node: int = ROOT_NODE + 1


COUNTERS = struct.Struct(">8Q")


def pack_counters(c: Counters) -> bytes:
    return COUNTERS.pack(
        c.ready, c.unacked, c.enqueued, c.dequeued, c.acked, c.nacked, c.expired, c.next_node
    )


def unpack_counters(data: bytes) -> Counters:
    return Counters(*COUNTERS.unpack(data))


@attrs.define
class NodeRecord:
    """One node of a fair queue's group tree. ``label`` is the path component (inner) or the full
    group name (leaf). ``inflight`` counts the messages in flight: a leaf's own, and on a weighted
    queue an inner node's whole subtree (its load; round robin leaves inner nodes at 0).
    ``ready`` (leaves) counts the group's ready messages; ``children`` how many child nodes exist;
    ``active_children`` how many of them have a deliverable message; ``pointer`` the child that had
    the last turn; ``indexed_load`` the load under which this node sits in its parent's active
    index, or NOT_INDEXED; ``leaf`` (inner nodes) the leaf of the group named by this very path, or
    0, which lets a turn skip the index when that leaf is the only active child."""

    kind: NodeKind
    parent: int
    label: str
    ready: int = 0
    inflight: int = 0
    children: int = 0
    active_children: int = 0
    pointer: int = 0
    indexed_load: int = NOT_INDEXED
    leaf: int = 0


@attrs.define
class MessageRecord:
    """A stored message. ``leaf`` is its group's leaf node (0 on a delayed queue);
    ``deadline_ms`` is meaningful while ``in_flight``; ``deliveries`` counts the times it was
    dequeued, which names each delivery (a delivery receipt is the message ID and this count).
    Records written before the count existed have seven fields and read as 0 deliveries."""

    in_flight: bool
    leaf: int
    priority: int
    deadline_ms: int
    group: str
    content: str
    metadata: dict[str, str] | None
    deliveries: int = 0

    def head(self) -> MessageHead:
        return (int(self.in_flight), self.leaf, self.priority, self.deadline_ms, self.deliveries)


# A record's head as ``MESSAGE_HEAD`` unpacks it: in flight (0/1), leaf, priority, deadline ms,
# deliveries. The hot paths (delivery, ack) use it as this plain tuple.
MessageHead = tuple[int, int, int, int, int]

_ENCODER = msgspec.msgpack.Encoder()
_QUEUE_DECODER = msgspec.msgpack.Decoder(tuple[int, str, QueueType, Strategy | None, int, int])
_NODE_DECODER = msgspec.msgpack.Decoder(
    tuple[NodeKind, int, str, int, int, int, int, int, int, int]
)
MESSAGE_HEAD = struct.Struct(">BQQQQ")  # in flight (0/1), leaf, priority, deadline ms, deliveries
MESSAGE_HEAD_BYTES = MESSAGE_HEAD.size
MESSAGE_BODY_DECODER = msgspec.msgpack.Decoder(tuple[str, str, dict[str, str] | None])
_V1_RECORD_FIRST_BYTE_MIN = 0x90  # a msgpack array; a format-2 head starts with 0 or 1
_V1_MESSAGE_DECODER = msgspec.msgpack.Decoder(
    tuple[bool, int, int, int, str, str, dict[str, str] | None, int]
)
_V1_MESSAGE_DECODER_NO_COUNT = msgspec.msgpack.Decoder(  # before ``deliveries``
    tuple[bool, int, int, int, str, str, dict[str, str] | None]
)


def pack_queue(q: QueueRecord) -> bytes:
    return _ENCODER.encode((q.queue_id, q.name, q.type, q.strategy, q.max_unacked, q.ack_timeout_s))


def unpack_queue(data: bytes) -> QueueRecord:
    return QueueRecord(*_QUEUE_DECODER.decode(data))


def pack_node(n: NodeRecord) -> bytes:
    return _ENCODER.encode(
        (
            n.kind,
            n.parent,
            n.label,
            n.ready,
            n.inflight,
            n.children,
            n.active_children,
            n.pointer,
            n.indexed_load,
            n.leaf,
        )
    )


def unpack_node(data: bytes) -> NodeRecord:
    return NodeRecord(*_NODE_DECODER.decode(data))


def pack_message_body(group: str, content: str, metadata: dict[str, str] | None) -> bytes:
    return _ENCODER.encode((group, content, metadata))


def pack_message(m: MessageRecord) -> bytes:
    head = MESSAGE_HEAD.pack(m.in_flight, m.leaf, m.priority, m.deadline_ms, m.deliveries)
    return head + pack_message_body(m.group, m.content, m.metadata)


def unpack_message(data: bytes) -> MessageRecord:
    if data[0] >= _V1_RECORD_FIRST_BYTE_MIN:
        return unpack_message_v1(data)
    in_flight, leaf, priority, deadline_ms, deliveries = MESSAGE_HEAD.unpack_from(data)
    group, content, metadata = MESSAGE_BODY_DECODER.decode(memoryview(data)[MESSAGE_HEAD_BYTES:])
    return MessageRecord(
        bool(in_flight), leaf, priority, deadline_ms, group, content, metadata, deliveries
    )


def is_v1_message(data: bytes) -> bool:
    return data[0] >= _V1_RECORD_FIRST_BYTE_MIN


def unpack_message_v1(data: bytes) -> MessageRecord:
    """A record of state format 1 (one msgpack array; seven fields before ``deliveries``)."""
    try:
        return MessageRecord(*_V1_MESSAGE_DECODER.decode(data))
    except msgspec.ValidationError:
        return MessageRecord(*_V1_MESSAGE_DECODER_NO_COUNT.decode(data))
