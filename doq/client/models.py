"""The values the doq client returns: frozen attrs classes parsed from the API's JSON bodies
(docs/api.md), with message IDs as Python ints (the API writes them as strings)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class QueueSettings:
    max_unacked: int
    ack_timeout: int  # seconds
    strategy: str | None = None  # ROUND_ROBIN or WEIGHTED on a fair queue

    @classmethod
    def parse(cls, body: dict[str, Any]) -> QueueSettings:
        return cls(body["max_unacked"], body["ack_timeout"], body.get("strategy"))


@attrs.frozen
class Queue:
    """A queue as created, updated or described. Counts and rates are present only where the
    answer has them (``info``, ``list_queues``); after create or update they are None."""

    name: str
    type: str | None
    settings: QueueSettings
    ready: int | None = None
    unacked: int | None = None
    total: int | None = None
    enqueue_rps: float | None = None
    dequeue_rps: float | None = None
    ack_rps: float | None = None
    nack_rps: float | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Queue:
        return cls(
            name=body["name"],
            type=body.get("type"),
            settings=QueueSettings.parse(body["settings"]),
            ready=body.get("ready"),
            unacked=body.get("unacked"),
            total=body.get("total"),
            enqueue_rps=body.get("enqueue_rps"),
            dequeue_rps=body.get("dequeue_rps"),
            ack_rps=body.get("ack_rps"),
            nack_rps=body.get("nack_rps"),
        )


@attrs.frozen
class Message:
    """A stored message (enqueued, got, peeked) or one delivered by a dequeue, which then has the
    ``receipt`` of that delivery (None for the ``ack=true`` forms it is over already: ``None``
    is also what a server without receipts answers)."""

    id: int
    group: str
    priority: int
    content: str
    metadata: dict[str, str] | None = None
    receipt: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any], receipt: str | None = None) -> Message:
        return cls(
            id=int(body["id"]),
            group=body.get("group", "default"),
            priority=body["priority"],
            content=body["content"],
            metadata=body.get("metadata"),
            receipt=body.get("receipt", receipt),
        )


@attrs.frozen
class NewMessage:
    """One message to enqueue. ``id`` None: the client gives it one (docs/client.md, "Retries")."""

    content: str
    priority: int = 0
    group: str = "default"
    metadata: dict[str, str] | None = None
    id: int | None = None


@attrs.frozen
class Enqueued:
    """The answer to one enqueue: ``duplicate`` when the queue held that ID already, and then
    ``message`` is the stored one (which a retry of the same enqueue finds)."""

    id: int
    duplicate: bool
    message: Message | None = None


SETTLE_VERBS = ("ack", "nack", "touch")


@attrs.frozen
class Settlement:
    """One ack, nack or touch of a delivered ``message`` (its receipt goes with it), as an item of
    a batch request or a frame on a stream. A nack's ``priority`` 0 keeps the message's own; its
    ``metadata``, when given, replaces the message's."""

    verb: str = attrs.field(validator=attrs.validators.in_(SETTLE_VERBS))
    message: Message
    priority: int = 0
    metadata: dict[str, str] | None = None


@attrs.frozen
class ItemError:
    status: int
    detail: str


@attrs.frozen
class ItemResult:
    """One item of a batch ack, nack or touch: ``status`` ACKNOWLEDGED, UNACKNOWLEDGED, TOUCHED or
    FAILED (then ``error`` has the status and detail its single request would have had)."""

    id: int
    status: str
    priority: int | None = None
    metadata: dict[str, str] | None = None
    error: ItemError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ItemResult:
        error = body.get("error")
        return cls(
            id=int(body["id"]),
            status=body["status"],
            priority=body.get("priority"),
            metadata=body.get("metadata"),
            error=None if error is None else ItemError(error["status"], error["detail"]),
        )


@attrs.frozen
class Server:
    id: str
    addr: str
    leader_addr: str
    is_leader: bool
    suffrage: str
    http_addr: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Server:
        return cls(
            body["id"],
            body["addr"],
            body.get("leader_addr", ""),
            bool(body.get("is_leader")),
            body.get("suffrage", ""),
            body.get("http_addr"),
        )


@attrs.frozen
class Member:
    """A member as ``/API/v1/cluster/members`` reports it: its Raft figures when it answered."""

    id: str
    addr: str
    http_addr: str | None
    suffrage: str
    is_leader: bool
    reachable: bool
    role: str | None = None
    term: int | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    lag: int | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Member:
        names = [field.name for field in attrs.fields(cls)]
        return cls(**{name: body.get(name) for name in names})


@attrs.frozen
class Backup:
    """A consistent snapshot (``/db/backup``): ``last_version`` is the log index it holds."""

    data: bytes
    last_version: int | None
