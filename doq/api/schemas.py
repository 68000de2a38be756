"""Every request and response body of the REST API (API.md), declared once as msgspec Structs.

The same classes validate request bodies (``doq.api.validation`` decodes with them: types,
ranges, lengths, required fields and "unexpected property" all come from these declarations),
encode responses, and become the OpenAPI document's components (quart-schema reads them) and the
JSON schemas that each body's ``$schema`` URL points at (``/schemas/<Name>.json``).

Request bodies may carry ``$schema`` (a client that echoes a response back is not refused);
response bodies always carry it first, as the Go server's framework did.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from doq.commands import (
    ACK_TIMEOUT_S_MAX,
    DEQUEUE_COUNT_MAX,
    GROUP_NAME_CHARS_MAX,
    MAX_UNACKED_MAX,
    METADATA_ENTRIES_MAX,
    QUEUE_NAME_CHARS_MAX,
)
from doq.longpoll import WAIT_S_MAX
from doq.protocol import BATCH_ITEMS_MAX, GENERATE_IDS_MAX

PRIORITY_MAX = (1 << 63) - 1  # the Go server's int64; a Unix time in seconds fits with room
MESSAGE_ID_DIGITS_MAX = 20  # u64 in decimal
NODE_ID_CHARS_MAX = 256
ADDRESS_CHARS_MAX = 1024
SINCE_MAX = (1 << 63) - 1  # msgspec's bounds are int64

QueueName = Annotated[str, msgspec.Meta(min_length=1, max_length=QUEUE_NAME_CHARS_MAX)]
Priority = Annotated[int, msgspec.Meta(ge=0, le=PRIORITY_MAX)]
Metadata = Annotated[dict[str, str], msgspec.Meta(max_length=METADATA_ENTRIES_MAX)]
MessageIdText = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^[0-9]{{1,{MESSAGE_ID_DIGITS_MAX}}}$",
        description="an unsigned 64-bit integer in decimal",
        examples=["123456789"],
    ),
]
SchemaUrl = Annotated[str, msgspec.Meta(description="the URL of this body's JSON schema")]
# Lower case is the contract; upper case is what responses report, accepted so that a client may
# send back what it read.
StrategyName = Literal["round_robin", "weighted", "ROUND_ROBIN", "WEIGHTED"]
ReportedStrategy = Literal["ROUND_ROBIN", "WEIGHTED"]
QueueTypeName = Literal["delayed", "fair"]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=NODE_ID_CHARS_MAX)]
Address = Annotated[
    str, msgspec.Meta(min_length=1, max_length=ADDRESS_CHARS_MAX, examples=["127.0.0.1:9002"])
]


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    schema: str | None = msgspec.field(default=None, name="$schema")


class _Response(msgspec.Struct, kw_only=True, omit_defaults=True):
    schema: SchemaUrl = msgspec.field(name="$schema")


# --- requests ------------------------------------------------------------------------------------


class QueueSettingsInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Queue settings; a field left out takes its default (create) or keeps its value (update)."""

    strategy: StrategyName | None = None
    max_unacked: Annotated[int, msgspec.Meta(ge=0, le=MAX_UNACKED_MAX)] | None = None
    ack_timeout: Annotated[int, msgspec.Meta(ge=1, le=ACK_TIMEOUT_S_MAX)] | None = None


class CreateQueueRequest(_Request, kw_only=True):
    name: QueueName
    type: QueueTypeName
    # Optional (an empty object): the Go server's own README creates queues without it.
    settings: QueueSettingsInput = msgspec.field(default_factory=QueueSettingsInput)


class UpdateQueueRequest(_Request, kw_only=True):
    settings: QueueSettingsInput


class EnqueueRequest(_Request, kw_only=True):
    id: MessageIdText | None = None
    group: Annotated[str, msgspec.Meta(max_length=GROUP_NAME_CHARS_MAX)] = "default"
    priority: Priority
    content: str
    metadata: Metadata | None = None


class BatchEnqueueRequest(_Request, kw_only=True):
    """Messages enqueued as one replicated command: all of them, or (one invalid) none."""

    messages: Annotated[
        list[EnqueueRequest], msgspec.Meta(min_length=1, max_length=BATCH_ITEMS_MAX)
    ]


class InFlightItemInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message of a batch ack or touch given as an object (an ID alone may be given as a
    string)."""

    id: MessageIdText
    receipt: Receipt | None = None


class BatchInFlightRequest(_Request, kw_only=True):
    """Messages to ack (or touch) as one replicated command, one result per message."""

    ids: Annotated[
        list[MessageIdText | InFlightItemInput],
        msgspec.Meta(min_length=1, max_length=BATCH_ITEMS_MAX),
    ]


class NackItemInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message to return now: priority 0 keeps the old one; metadata, when given, replaces the
    old."""

    id: MessageIdText
    priority: Priority = 0
    metadata: Metadata | None = None
    receipt: Receipt | None = None


class BatchNackRequest(_Request, kw_only=True):
    messages: Annotated[list[NackItemInput], msgspec.Meta(min_length=1, max_length=BATCH_ITEMS_MAX)]


Receipt = Annotated[
    str,
    msgspec.Meta(
        max_length=64,
        description="a delivery receipt from a dequeue: refused (409) when that delivery is over",
    ),
]


class NackRequest(_Request, kw_only=True):
    priority: Priority
    metadata: Metadata | None = None
    receipt: Receipt | None = None


class UpdatePriorityRequest(_Request, kw_only=True):
    priority: Priority


class GenerateIdsRequest(_Request, kw_only=True):
    number: Annotated[int, msgspec.Meta(ge=1, le=GENERATE_IDS_MAX)]


class JoinRequest(_Request, kw_only=True):
    """``http_addr`` is doq's extension: the joiner's HTTP address, so that any node can forward
    requests to it when it leads."""

    id: NodeId
    addr: Address
    http_addr: Address | None = None
    # doq's addition: move an existing member to ``addr`` (409 unless nothing answers at its
    # current Raft address); without it, a join with another address is refused (409).
    replace_unreachable: bool = False


class LeaveRequest(_Request, kw_only=True):
    id: NodeId


class BackupRequest(_Request, kw_only=True):
    since: Annotated[int, msgspec.Meta(ge=0, le=SINCE_MAX)]


class RestoreForm(msgspec.Struct, kw_only=True):
    """multipart/form-data with the backup file in field ``file``."""

    file: Annotated[str, msgspec.Meta(extra_json_schema={"format": "binary"})]


class DequeueQuery(msgspec.Struct, kw_only=True):
    """``count`` present: up to that many messages, as a list (empty when none is ready);
    absent: one message, as the Go server answered. ``wait``: seconds to wait for a first
    message (long polling)."""

    ack: bool = False
    count: Annotated[int, msgspec.Meta(ge=1, le=DEQUEUE_COUNT_MAX)] | None = None
    wait: Annotated[float, msgspec.Meta(ge=0, le=WAIT_S_MAX)] = 0


class ReceiptQuery(msgspec.Struct, kw_only=True):
    """``receipt``: the delivery receipt of the dequeue that took the message (optional)."""

    receipt: Receipt | None = None


# --- responses -----------------------------------------------------------------------------------


class QueueSettingsBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Resolved settings: ``strategy`` is absent on a delayed queue; ``ack_timeout`` in seconds."""

    strategy: ReportedStrategy | None = None
    max_unacked: int
    ack_timeout: int


class QueueCreatedBody(_Response, kw_only=True):
    status: Literal["CREATED"]
    name: str
    type: QueueTypeName
    settings: QueueSettingsBody


class QueueUpdatedBody(_Response, kw_only=True):
    status: Literal["UPDATED"]
    name: str
    settings: QueueSettingsBody


class StatusBody(_Response, kw_only=True):
    """A bare status: DELETED (queue), SUCCEDED (restore, spelled as the Go server did), OK."""

    status: str


class QueueInfoBody(_Response, kw_only=True):
    """A queue: the *_rps fields are per-second averages over the stats window."""

    name: str
    type: QueueTypeName
    settings: QueueSettingsBody
    enqueue_rps: float
    dequeue_rps: float
    ack_rps: float
    nack_rps: float
    ready: int
    unacked: int
    total: int


class QueueListBody(_Response, kw_only=True):
    queues: list[QueueInfoBody]


class MessageBody(_Response, kw_only=True):
    """A message; ``status`` is ENQUEUED, DEQUEUED or GOT. ``metadata`` is absent when empty."""

    status: Literal["ENQUEUED", "DEQUEUED", "GOT"]
    id: MessageIdText
    group: str
    priority: int
    content: str
    metadata: dict[str, str] | None = None


class EnqueuedItemBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One item of a batch enqueue: ENQUEUED with the new message's ``id``, or DUPLICATE with the
    message the queue already held under the item's client ``id`` (unchanged, in full)."""

    status: Literal["ENQUEUED", "DUPLICATE"]
    id: MessageIdText
    group: str | None = None
    priority: int | None = None
    content: str | None = None
    metadata: dict[str, str] | None = None


class BatchEnqueuedBody(_Response, kw_only=True):
    """One result per item of the request, in its order."""

    results: list[EnqueuedItemBody]


class ItemErrorBody(msgspec.Struct, kw_only=True):
    """Why one item of a batch failed: the status and detail its single request would have
    answered with."""

    status: int
    detail: str


class InFlightResultBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One item of a batch ack, nack or touch: its status (FAILED with ``error`` when the single
    request would have failed); a nacked item carries its priority and metadata."""

    status: Literal["ACKNOWLEDGED", "UNACKNOWLEDGED", "TOUCHED", "FAILED"]
    id: MessageIdText
    priority: int | None = None
    metadata: dict[str, str] | None = None
    error: ItemErrorBody | None = None


class BatchResultsBody(_Response, kw_only=True):
    """One result per item of the request, in its order."""

    results: list[InFlightResultBody]


class DeliveredBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A dequeued message with its delivery ``receipt`` (for ack, nack and touch)."""

    id: MessageIdText
    group: str
    priority: int
    content: str
    metadata: dict[str, str] | None = None
    receipt: str


class DequeuedBody(_Response, kw_only=True):
    """The messages of a dequeue with ``count``, in the order single dequeues would give them;
    empty when none was ready (in time)."""

    status: Literal["DEQUEUED"]
    messages: list[DeliveredBody]


class MessageIdBody(_Response, kw_only=True):
    status: Literal["ACKNOWLEDGED", "TOUCHED"]
    id: MessageIdText


class NackedBody(_Response, kw_only=True):
    status: Literal["UNACKNOWLEDGED"]
    id: MessageIdText
    priority: int
    metadata: dict[str, str] | None = None


class PriorityUpdatedBody(_Response, kw_only=True):
    status: Literal["UPDATED"]
    id: MessageIdText
    priority: int


class IdsBody(_Response, kw_only=True):
    ids: list[MessageIdText]


class JoinedBody(_Response, kw_only=True):
    id: str
    addr: str


class LeftBody(_Response, kw_only=True):
    id: str


class ServerBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A member: ``addr`` is its Raft address, ``leader_addr`` the leader's Raft address (empty
    when none is known), ``http_addr`` doq's addition."""

    id: str
    addr: str
    leader_addr: str
    is_leader: bool
    suffrage: Literal["Voter", "Nonvoter"]
    http_addr: str | None = None


class ServersBody(_Response, kw_only=True):
    servers: list[ServerBody]


class ClockBody(_Response, kw_only=True):
    """This node's own clock (Unix milliseconds): the peers probe it to bound command times."""

    unix_ms: int


class ErrorDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One reason: ``location`` (e.g. ``body.priority``) and ``value`` for validation errors."""

    message: str
    location: str | None = None
    value: Any = None


class ErrorModel(_Response, kw_only=True):
    """An RFC 9457 problem document (Content-Type application/problem+json)."""

    title: str
    status: int
    detail: str
    errors: list[ErrorDetail] | None = None


RESPONSE_MODELS: tuple[type[msgspec.Struct], ...] = (
    QueueCreatedBody,
    QueueUpdatedBody,
    StatusBody,
    QueueInfoBody,
    QueueListBody,
    MessageBody,
    BatchEnqueuedBody,
    BatchResultsBody,
    DequeuedBody,
    MessageIdBody,
    NackedBody,
    PriorityUpdatedBody,
    IdsBody,
    JoinedBody,
    LeftBody,
    ServersBody,
    ErrorModel,
)
