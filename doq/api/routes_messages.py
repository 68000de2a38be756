"""/API/v1/queues/{name}/messages and /API/v1/ids: enqueue, dequeue, get, delete, ack, nack,
touch, change priority, generate IDs (API.md "Messages").

Enqueue is the benchmark's path: one msgspec decode, one service call (which joins the next group
commit), one msgspec encode."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from quart import Quart, Response, request
from quart_schema import tag
from werkzeug.exceptions import MethodNotAllowed

from doq.api.context import ApiContext
from doq.api.links import schema_url
from doq.api.openapi import OneOfBodies
from doq.api.problems import validation_problem
from doq.api.receipts import RECEIPT_HEADER, delivery_of, receipt_of
from doq.api.render import MESSAGE_BODY, answers, fails, json_response, message_body
from doq.api.schemas import (
    DeliveredBody,
    DequeuedBody,
    DequeueQuery,
    EnqueueRequest,
    GenerateIdsRequest,
    IdsBody,
    MessageBody,
    MessageIdBody,
    NackedBody,
    NackRequest,
    PriorityUpdatedBody,
    ReceiptQuery,
    UpdatePriorityRequest,
)
from doq.api.validation import (
    accepts,
    check_queue_name,
    dequeue_query,
    receipt_query,
    requested_wait_s,
)
from doq.commands import DEFAULT_GROUP, U64_MAX
from doq.longpoll import dequeue_waiting
from doq.service import MessageInput, RejectedError
from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    Message,
    Nacked,
    PriorityUpdated,
    RejectCode,
    Result,
    Touched,
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

MESSAGES_PATH = "/API/v1/queues/<name>/messages"
MESSAGE_PATH = f"/API/v1/queues/<name>/messages/<int(max={U64_MAX}):message_id>"
IDS_PATH = "/API/v1/ids"


def message_input(body: EnqueueRequest, location: str = "body") -> MessageInput:
    """The service's input for a validated enqueue body (an ``id`` above u64 is refused);
    ``location`` names the body in a validation error (``body.messages[3]`` in a batch)."""
    message_id = None
    if body.id is not None:
        message_id = int(body.id)
        if message_id > U64_MAX:
            raise validation_problem(f"expected an integer <= {U64_MAX}", f"{location}.id", body.id)
    return MessageInput(
        priority=body.priority,
        content=body.content,
        id=message_id,
        group=body.group or DEFAULT_GROUP,
        metadata=body.metadata,
    )


def delivered_body(message: Message) -> DeliveredBody:
    return DeliveredBody(
        id=str(message.id),
        group=message.group,
        priority=message.priority,
        content=message.content,
        metadata=message.metadata or None,
        receipt=receipt_of(message),
    )


def _refuses_head(handler: F) -> F:
    """Dequeue is a GET that changes the queue, and Werkzeug answers HEAD with every GET route:
    a HEAD (a monitoring probe, `curl -I`) would take a message. Refuse it before anything."""

    @functools.wraps(handler)
    async def guarded(**kwargs: Any) -> Any:
        if request.method == "HEAD":
            raise MethodNotAllowed(valid_methods=["GET"])
        return await handler(**kwargs)

    return guarded  # type: ignore[return-value]


def register_message_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Messages"])
    @answers(MessageBody)
    @fails(400, 404, 413, 422, 503)
    @served(is_write=True)
    @accepts(EnqueueRequest)
    async def enqueue(name: str, body: EnqueueRequest) -> Response:
        """Enqueue a message

        An ``id`` the queue already holds answers with the stored message, not a second copy."""
        result = await service.enqueue(check_queue_name(name), (message_input(body),))
        assert isinstance(result, Enqueued), result
        return json_response(message_body("ENQUEUED", result.messages[0], schema_url(MESSAGE_BODY)))

    @_refuses_head
    @tag(["Messages"])
    @answers(OneOfBodies((MessageBody, DequeuedBody)))  # type: ignore[arg-type]
    @fails(400, 404, 422, 503)
    @served(is_write=True, hold_s=requested_wait_s)
    @dequeue_query(DequeueQuery)
    async def dequeue(name: str, ack: bool, count: int | None, wait_s: float) -> Response:
        """Dequeue the next message (or, with count, up to count messages)

        With ack=true a message is removed on delivery; otherwise it is in flight until it
        is acked, nacked, or its ack deadline passes. Without count an empty queue answers 400
        and the X-Doq-Receipt header names the delivery (for ack, nack and touch); with count
        the answer lists the messages, each with its receipt, or none. With wait (seconds, at
        most 20) the request is held until a message is ready or the wait ends."""
        queue = check_queue_name(name)
        if count is not None:
            return await _dequeue_many(queue, ack, count, wait_s)
        result = await _take(queue, ack, 1, wait_s)
        assert isinstance(result, Dequeued), result
        message = result.messages[0]
        response = json_response(message_body("DEQUEUED", message, schema_url(MESSAGE_BODY)))
        response.headers[RECEIPT_HEADER] = receipt_of(message)
        return response

    async def _take(queue: str, ack: bool, count: int, wait_s: float) -> Result:
        if wait_s > 0:
            return await dequeue_waiting(
                service, api.waits, queue, ack=ack, count=count, wait_s=wait_s
            )
        return await service.dequeue(queue, ack=ack, count=count)

    async def _dequeue_many(queue: str, ack: bool, count: int, wait_s: float) -> Response:
        try:
            result = await _take(queue, ack, count, wait_s)
        except RejectedError as exc:
            if exc.code is not RejectCode.QUEUE_EMPTY:
                raise
            delivered: tuple[Message, ...] = ()
        else:
            assert isinstance(result, Dequeued), result
            delivered = result.messages
        body = DequeuedBody(
            schema=schema_url("DequeuedBody"),
            status="DEQUEUED",
            messages=[delivered_body(message) for message in delivered],
        )
        return json_response(body)

    @tag(["Messages"])
    @answers(MessageBody)
    @fails(404, 422, 503)
    @served(is_write=False)
    async def get_message(name: str, message_id: int) -> Response:
        """Get a message without dequeuing it"""
        stored = await service.get_message(check_queue_name(name), message_id)
        return json_response(message_body("GOT", stored.message, schema_url(MESSAGE_BODY)))

    @tag(["Messages"])
    @fails(404, 422, 503)
    @served(is_write=True)
    async def delete_message(name: str, message_id: int) -> Response:
        """Delete a message (answers 204, no body)"""
        await service.delete_message(check_queue_name(name), message_id)
        return Response(b"", status=204)

    @tag(["Messages"])
    @answers(IdsBody)
    @fails(400, 422, 503)
    @served(is_write=False)
    @accepts(GenerateIdsRequest)
    async def generate_ids(body: GenerateIdsRequest) -> Response:
        """Generate message IDs (unique cluster-wide, increasing)"""
        ids = await service.generate_ids(body.number)
        return json_response(IdsBody(schema=schema_url("IdsBody"), ids=[str(i) for i in ids]))

    app.add_url_rule(MESSAGES_PATH, view_func=enqueue, methods=["POST"])
    app.add_url_rule(MESSAGES_PATH, view_func=dequeue, methods=["GET"])
    app.add_url_rule(MESSAGE_PATH, view_func=get_message, methods=["GET"])
    app.add_url_rule(MESSAGE_PATH, view_func=delete_message, methods=["DELETE"])
    app.add_url_rule(IDS_PATH, view_func=generate_ids, methods=["POST"])


def _nack_delivery(message_id: int, in_body: str | None, in_query: str | None) -> int | None:
    """A nack's receipt, from its body or its query (both: they must agree)."""
    if in_body is not None and in_query is not None and in_body != in_query:
        raise validation_problem("the body and the query give different receipts", "body.receipt")
    if in_body is not None:
        return delivery_of(in_body, message_id, "body.receipt")
    return delivery_of(in_query, message_id, "query.receipt")


def register_in_flight_routes(app: Quart, api: ApiContext) -> None:
    """ack, nack, touch and change priority: the life of a delivered message."""
    served = api.dispatcher.served
    service = api.service

    @tag(["Messages"])
    @answers(MessageIdBody)
    @fails(404, 409, 422, 503)
    @served(is_write=True)
    @receipt_query(ReceiptQuery)
    async def ack(name: str, message_id: int, receipt: str | None) -> Response:
        """Acknowledge an in-flight message

        With a receipt, refused (409) when that delivery is over."""
        delivery = delivery_of(receipt, message_id, "query.receipt")
        result = await service.ack(check_queue_name(name), message_id, delivery)
        assert isinstance(result, Acked), result
        return json_response(
            MessageIdBody(
                schema=schema_url("MessageIdBody"), status="ACKNOWLEDGED", id=str(result.id)
            )
        )

    @tag(["Messages"])
    @answers(NackedBody)
    @fails(400, 404, 409, 422, 503)
    @served(is_write=True)
    @receipt_query(ReceiptQuery)
    @accepts(NackRequest)
    async def nack(name: str, message_id: int, body: NackRequest, receipt: str | None) -> Response:
        """Return an in-flight message now

        priority 0 keeps the old one; metadata, when given, replaces the old. With a receipt
        (query or body), refused (409) when that delivery is over."""
        delivery = _nack_delivery(message_id, body.receipt, receipt)
        result = await service.nack(
            check_queue_name(name), message_id, body.priority, body.metadata, delivery
        )
        assert isinstance(result, Nacked), result
        return json_response(
            NackedBody(
                schema=schema_url("NackedBody"),
                status="UNACKNOWLEDGED",
                id=str(result.id),
                priority=result.priority,
                metadata=result.metadata or None,
            )
        )

    @tag(["Messages"])
    @answers(MessageIdBody)
    @fails(404, 409, 422, 503)
    @served(is_write=True)
    @receipt_query(ReceiptQuery)
    async def touch(name: str, message_id: int, receipt: str | None) -> Response:
        """Extend an in-flight message's ack deadline to now + ack_timeout

        With a receipt, refused (409) when that delivery is over."""
        delivery = delivery_of(receipt, message_id, "query.receipt")
        result = await service.touch(check_queue_name(name), message_id, delivery)
        assert isinstance(result, Touched), result
        return json_response(
            MessageIdBody(schema=schema_url("MessageIdBody"), status="TOUCHED", id=str(result.id))
        )

    @tag(["Messages"])
    @answers(PriorityUpdatedBody)
    @fails(400, 404, 422, 503)
    @served(is_write=True)
    @accepts(UpdatePriorityRequest)
    async def update_priority(name: str, message_id: int, body: UpdatePriorityRequest) -> Response:
        """Change a message's priority (ready or in flight)"""
        result = await service.update_priority(check_queue_name(name), message_id, body.priority)
        assert isinstance(result, PriorityUpdated), result
        return json_response(
            PriorityUpdatedBody(
                schema=schema_url("PriorityUpdatedBody"),
                status="UPDATED",
                id=str(result.id),
                priority=result.priority,
            )
        )

    app.add_url_rule(f"{MESSAGE_PATH}/ack", view_func=ack, methods=["POST"])
    app.add_url_rule(f"{MESSAGE_PATH}/nack", view_func=nack, methods=["POST"])
    app.add_url_rule(f"{MESSAGE_PATH}/touch", view_func=touch, methods=["POST"])
    app.add_url_rule(f"{MESSAGE_PATH}/priority", view_func=update_priority, methods=["PUT"])
