"""The frames of ``/API/v1/queues/{name}/stream``: a small JSON protocol, one object per WebSocket
text frame, told apart by its ``op`` (docs/api.md, "Streams").

From the client: ``credit`` (how many more messages the server may push), ``enqueue`` (a message,
with a client-chosen correlation ``ref``), ``ack``, ``nack`` and ``touch`` (an in-flight message,
with its ``ref`` and optionally its delivery ``receipt``). From the server: ``deliver`` (messages,
each with its receipt), ``results`` (the outcomes of client frames, each by its ``ref``) and
``error`` (why the stream ends, just before the server closes it).

A text frame holds one client frame or an array of them (a bundle), taken whole or not at all.
The message and item fields are the batch endpoints' own (doq/api/schemas.py), so a frame is
validated by the rules of the request it stands for.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from doq.api.schemas import (
    BATCH_ITEMS_MAX,
    DeliveredBody,
    EnqueuedItemBody,
    EnqueueRequest,
    ErrorDetail,
    InFlightResultBody,
    MessageIdText,
    Metadata,
    Priority,
    Receipt,
)
from doq.protocol import STREAM_CREDIT_MAX as STREAM_CREDIT_MAX  # re-exported, as before

REF_CHARS_MAX = 64  # a client's correlation reference

Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=REF_CHARS_MAX)]


class _ClientFrame(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="op"):
    pass


class CreditFrame(_ClientFrame, tag="credit"):
    """Grant the server ``credit`` more messages to push."""

    credit: Annotated[int, msgspec.Meta(ge=1, le=STREAM_CREDIT_MAX)]


class EnqueueFrame(_ClientFrame, tag="enqueue"):
    ref: Ref
    message: EnqueueRequest


class AckFrame(_ClientFrame, tag="ack"):
    ref: Ref
    id: MessageIdText
    receipt: Receipt | None = None


class NackFrame(_ClientFrame, tag="nack"):
    """Priority 0 keeps the old one; metadata, when given, replaces the old."""

    ref: Ref
    id: MessageIdText
    priority: Priority = 0
    metadata: Metadata | None = None
    receipt: Receipt | None = None


class TouchFrame(_ClientFrame, tag="touch"):
    ref: Ref
    id: MessageIdText
    receipt: Receipt | None = None


ClientFrame = CreditFrame | EnqueueFrame | AckFrame | NackFrame | TouchFrame


class _ServerFrame(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="op"):
    pass


class DeliverFrame(_ServerFrame, tag="deliver"):
    """Messages taken for this consumer, never more than the credit it granted."""

    messages: list[DeliveredBody]


class RefResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The outcome of the client frame ``ref``: an enqueue's or an ack, nack or touch's item."""

    ref: str
    result: EnqueuedItemBody | InFlightResultBody


class ResultsFrame(_ServerFrame, tag="results"):
    """The outcomes of the client frames one command applied, in the order they came (one frame
    for many: a WebSocket frame costs the server more than a result's bytes)."""

    results: list[RefResult]


class ErrorFrame(_ServerFrame, tag="error"):
    """Why the server closes the stream, as the problem document an HTTP request would get;
    ``leader``: the leader's HTTP address, for a client to reconnect to."""

    status: int
    detail: str
    errors: list[ErrorDetail] | None = None
    leader: str | None = None


# A text frame holds one client frame, or an array of them (a bundle, at most BATCH_ITEMS_MAX):
# each WebSocket frame costs the server several task hops, so a client that has many frames ready
# sends them in one.
Bundle = Annotated[list[ClientFrame], msgspec.Meta(min_length=1, max_length=BATCH_ITEMS_MAX)]
CLIENT_DECODER = msgspec.json.Decoder(ClientFrame | Bundle)
ENCODER = msgspec.json.Encoder()


def client_frames_of(data: str | bytes) -> list[ClientFrame]:
    """The client frames of a text frame; raises ``msgspec.DecodeError`` or
    ``msgspec.ValidationError`` (for the whole bundle: none of it is taken)."""
    decoded = CLIENT_DECODER.decode(data)
    return decoded if isinstance(decoded, list) else [decoded]
