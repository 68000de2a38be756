"""/API/v1/queues: create, update, delete, list and describe queues (API.md "Queues")."""

from __future__ import annotations

from quart import Quart, Response
from quart_schema import tag

from doq.api.context import ApiContext
from doq.api.links import schema_url
from doq.api.queue_rules import check_new_queue_name, check_settings_for_type
from doq.api.render import answers, fails, json_response, queue_info_body, settings_body
from doq.api.schemas import (
    CreateQueueRequest,
    QueueCreatedBody,
    QueueInfoBody,
    QueueListBody,
    QueueSettingsInput,
    QueueUpdatedBody,
    StatusBody,
    UpdateQueueRequest,
)
from doq.api.validation import accepts, check_queue_name
from doq.commands import QueueType, Strategy
from doq.state.results import QueueCreated, QueueDeleted, QueueUpdated

QUEUES_PATH = "/API/v1/queues"
QUEUE_PATH = "/API/v1/queues/<name>"


def _strategy(settings: QueueSettingsInput) -> Strategy | None:
    return Strategy(settings.strategy.lower()) if settings.strategy is not None else None


def register_queue_routes(app: Quart, api: ApiContext) -> None:
    served = api.dispatcher.served
    service = api.service

    @tag(["Queues"])
    @answers(QueueCreatedBody)
    @fails(400, 409, 422, 503)
    @served(is_write=True)
    @accepts(CreateQueueRequest)
    async def create_queue(body: CreateQueueRequest) -> Response:
        """Create a queue

        Creating a queue that exists with the same type changes nothing and answers 200. A name
        must round-trip through a URL path (no '/', not '.' or '..'), else 422; a delayed queue
        takes no strategy nor max_unacked (409)."""
        settings = body.settings
        queue_type = QueueType(body.type)
        check_settings_for_type(queue_type, settings)
        result = await service.create_queue(
            check_new_queue_name(body.name),
            queue_type,
            strategy=_strategy(settings),
            max_unacked=settings.max_unacked or 0,
            ack_timeout_s=settings.ack_timeout,
        )
        assert isinstance(result, QueueCreated), result
        return json_response(
            QueueCreatedBody(
                schema=schema_url("QueueCreatedBody"),
                status="CREATED",
                name=result.name,
                type=result.type.value,  # type: ignore[arg-type]
                settings=settings_body(result.settings),
            )
        )

    @tag(["Queues"])
    @answers(QueueUpdatedBody)
    @fails(400, 404, 409, 422, 503)
    @served(is_write=True)
    @accepts(UpdateQueueRequest)
    async def update_queue(name: str, body: UpdateQueueRequest) -> Response:
        """Update a queue's settings

        Settings left out keep their value; a strategy cannot change; a delayed queue takes no
        strategy nor max_unacked (409)."""
        settings = body.settings
        # A type changes only by deleting the queue: its type now is its type as this applies.
        check_settings_for_type((await service.queue_info(check_queue_name(name))).type, settings)
        result = await service.update_queue(
            name,
            strategy=_strategy(settings),
            max_unacked=settings.max_unacked,
            ack_timeout_s=settings.ack_timeout,
        )
        assert isinstance(result, QueueUpdated), result
        return json_response(
            QueueUpdatedBody(
                schema=schema_url("QueueUpdatedBody"),
                status="UPDATED",
                name=result.name,
                settings=settings_body(result.settings),
            )
        )

    @tag(["Queues"])
    @answers(StatusBody)
    @fails(404, 422, 503)
    @served(is_write=True)
    async def delete_queue(name: str) -> Response:
        """Delete a queue and all of its messages"""
        result = await service.delete_queue(check_queue_name(name))
        assert isinstance(result, QueueDeleted), result
        return json_response(StatusBody(schema=schema_url("StatusBody"), status="DELETED"))

    @tag(["Queues"])
    @answers(QueueListBody)
    @fails(503)
    @served(is_write=False)
    async def list_queues() -> Response:
        """List the queues, sorted by name"""
        infos = sorted(await service.list_queues(), key=lambda info: info.name)
        queues = [queue_info_body(info, api.rates.rates(info)) for info in infos]
        return json_response(QueueListBody(schema=schema_url("QueueListBody"), queues=queues))

    @tag(["Queues"])
    @answers(QueueInfoBody)
    @fails(404, 422, 503)
    @served(is_write=False)
    async def queue_info(name: str) -> Response:
        """Describe a queue: settings, counts and rates"""
        info = await service.queue_info(check_queue_name(name))
        return json_response(queue_info_body(info, api.rates.rates(info)))

    app.add_url_rule(QUEUES_PATH, view_func=create_queue, methods=["POST"])
    app.add_url_rule(QUEUES_PATH, view_func=list_queues, methods=["GET"])
    app.add_url_rule(QUEUE_PATH, view_func=update_queue, methods=["PUT"])
    app.add_url_rule(QUEUE_PATH, view_func=delete_queue, methods=["DELETE"])
    app.add_url_rule(QUEUE_PATH, view_func=queue_info, methods=["GET"])
