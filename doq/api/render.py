"""Response bodies from the service's results: each result value becomes its schema's Struct,
encoded by msgspec in one call (no intermediate dicts, no stdlib json on the hot path).

Message IDs become decimal strings (API.md: u64 does not survive JavaScript's numbers); strategies
are reported in upper case; empty metadata is left out, as the Go server's ``omitempty`` did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from quart import Response
from quart_schema import document_response

from doq.api.links import schema_url
from doq.api.schemas import ErrorModel, MessageBody, QueueInfoBody, QueueSettingsBody
from doq.rates import Rates
from doq.state.results import Message, QueueInfo, QueueSettings

JSON_CONTENT_TYPE = "application/json"
MESSAGE_BODY = "MessageBody"  # the schema name of a message answer

F = TypeVar("F", bound=Callable[..., Any])

_ENCODER = msgspec.json.Encoder()


def json_response(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(_ENCODER.encode(body), status=status, content_type=JSON_CONTENT_TYPE)


def answers(model: type[msgspec.Struct], status: int = 200) -> Callable[[F], F]:
    """Document the route's success body."""
    return document_response(model, status)


def fails(*statuses: int) -> Callable[[F], F]:
    """Document the problem statuses the route may answer with."""

    def decorator(handler: F) -> F:
        for status in statuses:
            handler = document_response(ErrorModel, status)(handler)
        return handler

    return decorator


def settings_body(settings: QueueSettings) -> QueueSettingsBody:
    strategy = settings.strategy.value.upper() if settings.strategy is not None else None
    return QueueSettingsBody(
        strategy=strategy,  # type: ignore[arg-type]
        max_unacked=settings.max_unacked,
        ack_timeout=settings.ack_timeout_s,
    )


def message_body(status: str, message: Message, schema: str) -> MessageBody:
    """``schema``: the body's ``$schema`` URL (``schema_url(MESSAGE_BODY)`` in a route)."""
    return MessageBody(
        schema=schema,
        status=status,  # type: ignore[arg-type]
        id=str(message.id),
        group=message.group,
        priority=message.priority,
        content=message.content,
        metadata=message.metadata or None,
    )


def queue_info_body(info: QueueInfo, rates: Rates) -> QueueInfoBody:
    return QueueInfoBody(
        schema=schema_url("QueueInfoBody"),
        name=info.name,
        type=info.type.value,  # type: ignore[arg-type]
        settings=settings_body(info.settings),
        enqueue_rps=rates.enqueue_rps,
        dequeue_rps=rates.dequeue_rps,
        ack_rps=rates.ack_rps,
        nack_rps=rates.nack_rps,
        ready=info.ready,
        unacked=info.unacked,
        total=info.total,
    )
