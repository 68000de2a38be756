"""Batch forms of the message endpoints (issue 8): many messages, one replicated command.

``POST /API/v1/queues/{name}/messages/batch`` enqueues up to ``BATCH_ITEMS_MAX`` messages as one
``Enqueue`` command: one Raft entry, one apply, one answer listing a result per item in order.
``POST .../messages/ack``, ``.../nack`` and ``.../touch`` do the same for in-flight messages
(``AckMany``, ``NackMany``, ``TouchMany``): each item gets the result its single request would
have had, a failed item (FAILED, with that request's status and detail) does not stop the others.

Validation is all-or-nothing: the first invalid item answers 422 naming its index
(``body.messages[17].priority``) and nothing is applied. A batch leaves the same state and answers
as the same single operations one after the other (tests/state/test_batch_ops.py, Hypothesis).
"""

from __future__ import annotations

from quart import Quart, Response
from quart_schema import tag

from doq.api.context import ApiContext
from doq.api.errors import status_of_rejection, validation_problem
from doq.api.links import schema_url
from doq.api.receipts import delivery_of
from doq.api.render import answers, fails, json_response
from doq.api.routes_messages import MESSAGES_PATH, message_input
from doq.api.schemas import (
    BatchEnqueuedBody,
    BatchEnqueueRequest,
    BatchInFlightRequest,
    BatchNackRequest,
    BatchResultsBody,
    EnqueuedItemBody,
    InFlightItemInput,
    InFlightResultBody,
    ItemErrorBody,
)
from doq.api.validation import accepts, check_queue_name
from doq.commands import U64_MAX, InFlightItem, NackItem
from doq.state.results import Acked, Enqueued, ManyResults, Nacked, Rejected, Result, Touched

BATCH_PATH = f"{MESSAGES_PATH}/batch"
_STATUS_OF = {Acked: "ACKNOWLEDGED", Nacked: "UNACKNOWLEDGED", Touched: "TOUCHED"}


def message_id_at(text: str, location: str) -> int:
    """A decimal ID the schema let through (up to 20 digits), refused above u64."""
    message_id = int(text)
    if message_id > U64_MAX:
        raise validation_problem(f"expected an integer <= {U64_MAX}", location, text)
    return message_id


def in_flight_items(body: BatchInFlightRequest) -> list[InFlightItem]:
    items = []
    for position, entry in enumerate(body.ids):
        if isinstance(entry, InFlightItemInput):
            message_id = message_id_at(entry.id, f"body.ids[{position}].id")
            delivery = delivery_of(entry.receipt, message_id, f"body.ids[{position}].receipt")
            items.append(InFlightItem(message_id, delivery))
        else:
            items.append(InFlightItem(message_id_at(entry, f"body.ids[{position}]")))
    return items


def nack_items(body: BatchNackRequest) -> list[NackItem]:
    items = []
    for position, entry in enumerate(body.messages):
        location = f"body.messages[{position}]"
        message_id = message_id_at(entry.id, f"{location}.id")
        delivery = delivery_of(entry.receipt, message_id, f"{location}.receipt")
        items.append(NackItem(message_id, entry.priority, entry.metadata, delivery))
    return items


def item_result(message_id: int, result: Acked | Nacked | Touched | Rejected) -> InFlightResultBody:
    if isinstance(result, Rejected):
        error = ItemErrorBody(status=status_of_rejection(result.code), detail=result.detail)
        return InFlightResultBody(status="FAILED", id=str(message_id), error=error)
    if isinstance(result, Nacked):
        return InFlightResultBody(
            status="UNACKNOWLEDGED",
            id=str(message_id),
            priority=result.priority,
            metadata=result.metadata or None,
        )
    return InFlightResultBody(status=_STATUS_OF[type(result)], id=str(message_id))  # type: ignore[arg-type]


def results_response(ids: list[int], result: Result) -> Response:
    assert isinstance(result, ManyResults), result
    results = [item_result(i, r) for i, r in zip(ids, result.results, strict=True)]
    return json_response(BatchResultsBody(schema=schema_url("BatchResultsBody"), results=results))


def enqueued_items(result: Enqueued) -> list[EnqueuedItemBody]:
    duplicate_at = set(result.duplicate_at)
    items = []
    for position, message in enumerate(result.messages):
        if position in duplicate_at:
            items.append(
                EnqueuedItemBody(
                    status="DUPLICATE",
                    id=str(message.id),
                    group=message.group,
                    priority=message.priority,
                    content=message.content,
                    metadata=message.metadata or None,
                )
            )
        else:
            items.append(EnqueuedItemBody(status="ENQUEUED", id=str(message.id)))
    return items


def register_batch_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Messages"])
    @answers(BatchEnqueuedBody)
    @fails(400, 404, 413, 422, 503)
    @served(is_write=True)
    @accepts(BatchEnqueueRequest)
    async def enqueue_batch(name: str, body: BatchEnqueueRequest) -> Response:
        """Enqueue many messages at once

        One replicated command: every message or, when one is invalid, none. The answer lists
        one result per message in order: ENQUEUED with its id, or DUPLICATE with the message
        the queue already held under the client id given."""
        queue = check_queue_name(name)
        inputs = [
            message_input(item, f"body.messages[{position}]")
            for position, item in enumerate(body.messages)
        ]
        result = await service.enqueue(queue, inputs)
        assert isinstance(result, Enqueued), result
        return json_response(
            BatchEnqueuedBody(
                schema=schema_url("BatchEnqueuedBody"), results=enqueued_items(result)
            )
        )

    app.add_url_rule(BATCH_PATH, view_func=enqueue_batch, methods=["POST"])
    register_batch_in_flight_routes(app, api)


def register_batch_in_flight_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Messages"])
    @answers(BatchResultsBody)
    @fails(400, 404, 413, 422, 503)
    @served(is_write=True)
    @accepts(BatchInFlightRequest)
    async def ack_batch(name: str, body: BatchInFlightRequest) -> Response:
        """Acknowledge many in-flight messages at once

        One replicated command; one result per ID, in order."""
        items = in_flight_items(body)
        result = await service.ack_many(check_queue_name(name), items)
        return results_response([item.id for item in items], result)

    @tag(["Messages"])
    @answers(BatchResultsBody)
    @fails(400, 404, 413, 422, 503)
    @served(is_write=True)
    @accepts(BatchNackRequest)
    async def nack_batch(name: str, body: BatchNackRequest) -> Response:
        """Return many in-flight messages now

        Each with its own priority (0 keeps the old one) and metadata (replaces the old when
        given). One replicated command; one result per message, in order."""
        items = nack_items(body)
        result = await service.nack_many(check_queue_name(name), items)
        return results_response([item.id for item in items], result)

    @tag(["Messages"])
    @answers(BatchResultsBody)
    @fails(400, 404, 413, 422, 503)
    @served(is_write=True)
    @accepts(BatchInFlightRequest)
    async def touch_batch(name: str, body: BatchInFlightRequest) -> Response:
        """Extend many in-flight messages' ack deadlines to now + ack_timeout

        One replicated command; one result per ID, in order."""
        items = in_flight_items(body)
        result = await service.touch_many(check_queue_name(name), items)
        return results_response([item.id for item in items], result)

    app.add_url_rule(f"{MESSAGES_PATH}/ack", view_func=ack_batch, methods=["POST"])
    app.add_url_rule(f"{MESSAGES_PATH}/nack", view_func=nack_batch, methods=["POST"])
    app.add_url_rule(f"{MESSAGES_PATH}/touch", view_func=touch_batch, methods=["POST"])
