"""The replicated commands: what the leader proposes and every replica applies, and their codec.

Each command is a frozen attrs value, complete in itself: the leader stamps ``ts_ms`` (its clock,
Unix milliseconds), assigns message IDs and resolves every setting from its own configuration before
proposing, so a replica applies a command from the command and its state alone (docs/design.md,
rule 4). The validators here are the structural rules (ranges, lengths); whether a command makes
sense against the state (the queue exists, the message is in flight) is the state machine's call.

Wire form: one byte of format version, one byte naming the command, then the command as msgpack
(msgspec, which reads and writes attrs classes directly: about a microsecond a command, several
times faster than cattrs; docs/design.md). ``decode_command`` raises ``CommandDecodeError`` and
nothing else for bytes it cannot turn into a valid command, so a poisoned log entry becomes a
rejection.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import attrs
import msgspec

from doq.ids import ID_MAX
from doq.protocol import DEQUEUE_COUNT_MAX as DEQUEUE_COUNT_MAX  # re-exported, as before
from raft_zmq.codec import NODE_ID_CHARS_MAX  # one limit for the wire and the commands

COMMAND_FORMAT_VERSION = 1

U64_MAX = (1 << 64) - 1
QUEUE_NAME_CHARS_MAX = 1024  # API.md: name ≤ 1024
GROUP_NAME_CHARS_MAX = 1024
DEFAULT_GROUP = "default"
ENQUEUE_MESSAGES_MAX = 10_000  # messages in one Enqueue command
IN_FLIGHT_ITEMS_MAX = 10_000  # messages one AckMany, NackMany or TouchMany command addresses
ACK_TIMEOUT_S_MAX = (1 << 31) - 1  # keeps every deadline far inside u64 milliseconds
MAX_UNACKED_MAX = (1 << 32) - 1
METADATA_ENTRIES_MAX = 1_000


class QueueType(enum.StrEnum):
    DELAYED = "delayed"
    FAIR = "fair"


class Strategy(enum.StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"


class CommandDecodeError(ValueError):
    """The bytes are not a valid command of a format this version understands."""


# --- validators ----------------------------------------------------------------------------------


def _u64(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"{attribute.name} must be in 0..{U64_MAX}, got {value}")


def _optional_u64(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None:
        _u64(instance, attribute, value)


def _queue_name(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not 1 <= len(value) <= QUEUE_NAME_CHARS_MAX:
        raise ValueError(f"{attribute.name} must have 1..{QUEUE_NAME_CHARS_MAX} characters")


def _group_name(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if len(value) > GROUP_NAME_CHARS_MAX:
        raise ValueError(f"{attribute.name} must have at most {GROUP_NAME_CHARS_MAX} characters")


def _ack_timeout_s(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 1 <= value <= ACK_TIMEOUT_S_MAX:
        raise ValueError(f"{attribute.name} must be in 1..{ACK_TIMEOUT_S_MAX}")


def _max_unacked(_instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_UNACKED_MAX:
        raise ValueError(f"{attribute.name} must be in 0..{MAX_UNACKED_MAX}")


def _metadata(
    _instance: object, attribute: attrs.Attribute[Any], value: dict[str, str] | None
) -> None:
    if value is not None and len(value) > METADATA_ENTRIES_MAX:
        raise ValueError(f"{attribute.name} may hold at most {METADATA_ENTRIES_MAX} entries")


def _node_id(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not 1 <= len(value) <= NODE_ID_CHARS_MAX:
        raise ValueError(f"{attribute.name} must have 1..{NODE_ID_CHARS_MAX} characters")


def _message_id(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= ID_MAX:
        raise ValueError(f"{attribute.name} must be in 0..{ID_MAX}")


def _count(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= DEQUEUE_COUNT_MAX:
        raise ValueError(f"{attribute.name} must be in 1..{DEQUEUE_COUNT_MAX}")


def _items(_instance: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not 1 <= len(value) <= IN_FLIGHT_ITEMS_MAX:
        raise ValueError(f"{attribute.name} must hold 1..{IN_FLIGHT_ITEMS_MAX} items")


def _messages(_instance: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not 1 <= len(value) <= ENQUEUE_MESSAGES_MAX:
        raise ValueError(f"{attribute.name} must hold 1..{ENQUEUE_MESSAGES_MAX} messages")


# --- commands ------------------------------------------------------------------------------------


@attrs.frozen
class CreateQueue:
    """Create a queue; an existing queue of the same type is left as it is. ``strategy`` None on a
    fair queue means "not given": round robin when the queue is new, no conflict when it exists.
    ``max_unacked`` is kept on a delayed queue too but only a fair queue uses it."""

    ts_ms: int = attrs.field(validator=_u64)
    name: str = attrs.field(validator=_queue_name)
    type: QueueType
    ack_timeout_s: int = attrs.field(validator=_ack_timeout_s)
    strategy: Strategy | None = None
    max_unacked: int = attrs.field(default=0, validator=_max_unacked)


@attrs.frozen
class UpdateQueue:
    """Change settings; a field left None keeps its value. A different strategy is a conflict."""

    ts_ms: int = attrs.field(validator=_u64)
    name: str = attrs.field(validator=_queue_name)
    strategy: Strategy | None = None
    max_unacked: int | None = attrs.field(default=None, validator=_max_unacked)
    ack_timeout_s: int | None = attrs.field(default=None, validator=_ack_timeout_s)


@attrs.frozen
class DeleteQueue:
    ts_ms: int = attrs.field(validator=_u64)
    name: str = attrs.field(validator=_queue_name)


@attrs.frozen
class NewMessage:
    """One message of an Enqueue. ``id`` is already assigned (by the leader, or by the client)."""

    id: int = attrs.field(validator=_u64)
    priority: int = attrs.field(validator=_u64)
    content: str
    group: str = attrs.field(default=DEFAULT_GROUP, validator=_group_name)
    metadata: dict[str, str] | None = attrs.field(default=None, validator=_metadata)


@attrs.frozen
class Enqueue:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    messages: tuple[NewMessage, ...] = attrs.field(validator=_messages)


@attrs.frozen
class Dequeue:
    """Deliver up to ``count`` messages; ``ack`` removes them on delivery."""

    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    count: int = attrs.field(default=1, validator=_count)
    ack: bool = False


@attrs.frozen
class Ack:
    """``delivery``, when given (from a delivery receipt), must be the message's current
    delivery, else the command is refused as stale; None keeps the Go server's behaviour."""

    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    id: int = attrs.field(validator=_u64)
    delivery: int | None = attrs.field(default=None, validator=_optional_u64)


@attrs.frozen
class Nack:
    """Return an in-flight message now; ``priority`` 0 keeps the old one, ``metadata`` None keeps
    the old metadata."""

    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    id: int = attrs.field(validator=_u64)
    priority: int = attrs.field(default=0, validator=_u64)
    metadata: dict[str, str] | None = attrs.field(default=None, validator=_metadata)
    delivery: int | None = attrs.field(default=None, validator=_optional_u64)


@attrs.frozen
class Touch:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    id: int = attrs.field(validator=_u64)
    delivery: int | None = attrs.field(default=None, validator=_optional_u64)


@attrs.frozen
class UpdatePriority:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    id: int = attrs.field(validator=_u64)
    priority: int = attrs.field(validator=_u64)


@attrs.frozen
class DeleteMessage:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    id: int = attrs.field(validator=_u64)


# The items of the batch commands are msgspec structs, not attrs values: a batch decodes hundreds
# of them, and msgspec checks a struct's constraints in C while it decodes, where an attrs value
# runs its validators in Python (about 0.5 µs an item, as much as the ack's LMDB work). The wire
# form is the same map of field names either way. Built in Python (by the API, which validated
# its input first), a struct is not checked; decoding is what guards the log.
U64Field = Annotated[int, msgspec.Meta(ge=0)]  # msgpack integers end at 2^64 - 1
MetadataField = Annotated[dict[str, str], msgspec.Meta(max_length=METADATA_ENTRIES_MAX)]


class InFlightItem(msgspec.Struct, frozen=True):
    """One message of an AckMany or TouchMany; ``delivery`` as in ``Ack``."""

    id: U64Field
    delivery: U64Field | None = None


class NackItem(msgspec.Struct, frozen=True):
    """One message of a NackMany, with its own priority and metadata (as ``Nack``)."""

    id: U64Field
    priority: U64Field = 0
    metadata: MetadataField | None = None
    delivery: U64Field | None = None


@attrs.frozen
class AckMany:
    """``Ack`` of each item, in order, in one command: the same state and results as the single
    commands at the same time (doq/state/batch_ops.py)."""

    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    items: tuple[InFlightItem, ...] = attrs.field(validator=_items)


@attrs.frozen
class NackMany:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    items: tuple[NackItem, ...] = attrs.field(validator=_items)


@attrs.frozen
class TouchMany:
    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)
    items: tuple[InFlightItem, ...] = attrs.field(validator=_items)


@attrs.frozen
class ExpireDue:
    """Return every in-flight message of ``queue`` whose deadline is at or before the command's
    time to ready, as any command on the queue would (doq/expiry.py proposes it, stamped by the
    leader, so that counts do not wait for the next consumer; replicas stay identical)."""

    ts_ms: int = attrs.field(validator=_u64)
    queue: str = attrs.field(validator=_queue_name)


@attrs.frozen
class RestoreState:
    """Replace the whole queue state with a snapshot (the bytes of a ``snapshot()`` file, as
    ``/db/backup`` hands out), on every replica at the same log index."""

    ts_ms: int = attrs.field(validator=_u64)
    snapshot: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")


@attrs.frozen
class AssignNodeNumber:
    """Give ``node_id`` the node number of its message IDs (doq/ids.py): the lowest number never
    assigned before, or the one it already has. A leader proposes it before it hands out its first
    ID, so two nodes never share a number."""

    ts_ms: int = attrs.field(validator=_u64)
    node_id: str = attrs.field(validator=_node_id)


@attrs.frozen
class ReserveIds:
    """Raise the state's ID floor to ``upto``. The leader hands out IDs of ``POST /API/v1/ids``
    only up to a floor it has reserved so, so that any later leader starts above them."""

    ts_ms: int = attrs.field(validator=_u64)
    upto: int = attrs.field(validator=_message_id)


Command = (
    CreateQueue
    | UpdateQueue
    | DeleteQueue
    | Enqueue
    | Dequeue
    | Ack
    | Nack
    | Touch
    | UpdatePriority
    | DeleteMessage
    | RestoreState
    | AssignNodeNumber
    | ReserveIds
    | AckMany
    | NackMany
    | TouchMany
    | ExpireDue
)

# The tag byte of each command. A tag is never reused for another meaning.
_TAGS: dict[type, int] = {
    CreateQueue: 1,
    UpdateQueue: 2,
    DeleteQueue: 3,
    Enqueue: 4,
    Dequeue: 5,
    Ack: 6,
    Nack: 7,
    Touch: 8,
    UpdatePriority: 9,
    DeleteMessage: 10,
    RestoreState: 11,
    AssignNodeNumber: 12,
    ReserveIds: 13,
    # 20 and up: the batch commands of issue 8 (12-19 left to commands other work adds).
    AckMany: 20,
    NackMany: 21,
    TouchMany: 22,
    ExpireDue: 23,
}
_DECODERS: dict[int, msgspec.msgpack.Decoder[Any]] = {
    tag: msgspec.msgpack.Decoder(cls) for cls, tag in _TAGS.items()
}
_ENCODER = msgspec.msgpack.Encoder()
_HEADER_BYTES = 2


def encode_command(command: Command) -> bytes:
    tag = _TAGS[type(command)]
    buffer = bytearray((COMMAND_FORMAT_VERSION, tag))
    _ENCODER.encode_into(command, buffer, _HEADER_BYTES)
    return bytes(buffer)


def decode_command(data: bytes) -> Command:
    if len(data) < _HEADER_BYTES:
        raise CommandDecodeError(f"a command needs at least {_HEADER_BYTES} bytes, got {len(data)}")
    if data[0] != COMMAND_FORMAT_VERSION:
        raise CommandDecodeError(f"unknown command format version {data[0]}")
    decoder = _DECODERS.get(data[1])
    if decoder is None:
        raise CommandDecodeError(f"unknown command tag {data[1]}")
    try:
        command: Command = decoder.decode(memoryview(data)[_HEADER_BYTES:])
    except (msgspec.MsgspecError, ValueError, TypeError) as exc:
        raise CommandDecodeError(f"malformed {decoder.type.__name__}: {exc}") from exc
    return command
