"""The Go server's ``DOQ`` gRPC service: each call made as its REST request (doq/grpc/rest.py).

Runs on the gRPC thread's asyncio loop; the REST request runs in Trio through the portal
(doq/grpc/bridge.py). Answers are the REST answers in the service's messages; errors are gRPC
status codes (doq/grpc/status.py), not the Go server's ``Unknown``.

DequeueStream keeps the Go server's protocol: the client's first request names the queue and
``ack``; the server sends one message for each request the client sends (the first included),
holding each until a message is ready by long polling on the leader (doq/longpoll.py), so a
stream is woken by the same events as a waiting REST dequeue, never by polling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from doq.grpc import doq_pb2 as pb
from doq.grpc import doq_pb2_grpc as pb_grpc
from doq.grpc.bridge import PortalClosed, TrioPortal
from doq.grpc.rest import RestAnswer, RestClient, segment
from doq.grpc.status import EMPTY_QUEUE_STATUS, status_of
from doq.longpoll import WAIT_S_MAX

QUEUES = "/API/v1/queues"
Context = grpc.aio.ServicerContext


def _messages(queue: str) -> str:
    return f"{QUEUES}/{segment(queue)}/messages"


def _message(queue: str, message_id: int) -> str:
    return f"{_messages(queue)}/{message_id}"


def _settings_json(settings: pb.QueueSettings) -> dict[str, Any]:
    """Proto3 has no "absent": a zero value is a setting left out (its default, or unchanged)."""
    out: dict[str, Any] = {}
    if settings.strategy:
        out["strategy"] = pb.QueueSettings.Strategy.Name(settings.strategy)
    if settings.max_unacked:
        out["max_unacked"] = settings.max_unacked
    if settings.ack_timeout:
        out["ack_timeout"] = settings.ack_timeout
    return out


def _settings_pb(body: dict[str, Any]) -> pb.QueueSettings:
    strategy = body.get("strategy")
    return pb.QueueSettings(
        strategy=pb.QueueSettings.Strategy.Value(strategy) if strategy else 0,
        max_unacked=body["max_unacked"],
        ack_timeout=body["ack_timeout"],
    )


def _queue_pb(body: dict[str, Any]) -> pb.GetQueueResponse:
    return pb.GetQueueResponse(
        name=body["name"],
        type=body["type"],
        settings=_settings_pb(body["settings"]),
        stats=pb.Stats(
            enqueueRPS=body["enqueue_rps"],
            dequeueRPS=body["dequeue_rps"],
            ackRPS=body["ack_rps"],
            nackRPS=body["nack_rps"],
        ),
        ready=body["ready"],
        unacked=body["unacked"],
        total=body["total"],
    )


def _message_fields(queue: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": True,
        "queueName": queue,
        "id": int(body["id"]),
        "group": body["group"],
        "priority": body["priority"],
        "content": body["content"],
        "metadata": body.get("metadata") or {},
    }


def _enqueue_json(request: pb.EnqueueRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"priority": request.priority, "content": request.content}
    if request.id:  # 0: assign one, as the Go server did
        body["id"] = str(request.id)
    if request.group:
        body["group"] = request.group
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    return body


class DoqServicer(pb_grpc.DOQServicer):
    def __init__(self, portal: TrioPortal, rest: RestClient) -> None:
        self._portal = portal
        self._rest = rest

    async def _call(
        self,
        context: Context,
        method: str,
        path: str,
        *,
        query: str = "",
        body: Any = None,
        conflict: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION,
    ) -> Any:
        """The REST answer's JSON body, or the call ends with the status the answer maps to."""
        answer = await self._answer(context, method, path, query=query, body=body)
        if answer.status >= 400:
            await _abort(context, answer, conflict)
        return answer.json()

    async def _answer(
        self, context: Context, method: str, path: str, *, query: str = "", body: Any = None
    ) -> RestAnswer:
        try:
            return await self._portal.run(self._call_rest, method, path, query, body)
        except PortalClosed as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise AssertionError("abort raises") from None

    async def _call_rest(self, method: str, path: str, query: str, body: Any) -> RestAnswer:
        return await self._rest.call(method, path, query=query, body=body)

    # --- ids and queues -------------------------------------------------------------------------
    async def GenerateIDs(self, request: Any, context: Context) -> Any:
        body = await self._call(context, "POST", "/API/v1/ids", body={"number": request.number})
        return pb.GenerateIDsResponse(success=True, ids=[int(i) for i in body["ids"]])

    async def CreateQueue(self, request: Any, context: Context) -> Any:
        body = {
            "name": request.name,
            "type": request.type,
            "settings": _settings_json(request.settings),
        }
        await self._call(
            context, "POST", QUEUES, body=body, conflict=grpc.StatusCode.ALREADY_EXISTS
        )
        return pb.CreateQueueResponse(success=True)

    async def UpdateQueue(self, request: Any, context: Context) -> Any:
        body = {"settings": _settings_json(request.settings)}
        await self._call(context, "PUT", f"{QUEUES}/{segment(request.name)}", body=body)
        return pb.UpdateQueueResponse(success=True)

    async def DeleteQueue(self, request: Any, context: Context) -> Any:
        await self._call(context, "DELETE", f"{QUEUES}/{segment(request.name)}")
        return pb.DeleteQueueResponse(success=True)

    async def GetQueue(self, request: Any, context: Context) -> Any:
        return _queue_pb(await self._call(context, "GET", f"{QUEUES}/{segment(request.name)}"))

    async def GetQueues(self, request: Any, context: Context) -> Any:
        body = await self._call(context, "GET", QUEUES)
        queues = [q for q in body["queues"] if not request.type or q["type"] == request.type]
        return pb.GetQueuesResponse(queues=[_queue_pb(q) for q in queues])

    # --- messages -------------------------------------------------------------------------------
    async def Enqueue(self, request: Any, context: Context) -> Any:
        body = await self._call(
            context, "POST", _messages(request.queueName), body=_enqueue_json(request)
        )
        return pb.EnqueueResponse(**_message_fields(request.queueName, body))

    async def EnqueueStream(
        self, request_iterator: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            yield await self.Enqueue(request, context)

    async def Dequeue(self, request: Any, context: Context) -> Any:
        query = f"ack={'true' if request.ack else 'false'}"
        body = await self._call(context, "GET", _messages(request.queueName), query=query)
        return pb.DequeueResponse(**_message_fields(request.queueName, body))

    async def DequeueStream(
        self, request_iterator: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        first = None
        async for request in request_iterator:
            first = first or request  # the Go server's protocol: the first names the queue
            yield await self._dequeue_waiting(first, context)

    async def _dequeue_waiting(self, request: Any, context: Context) -> Any:
        query = f"ack={'true' if request.ack else 'false'}&wait={WAIT_S_MAX}"
        path = _messages(request.queueName)
        while True:  # each round is held on the leader until a message is ready or the wait ends
            answer = await self._answer(context, "GET", path, query=query)
            if answer.status == EMPTY_QUEUE_STATUS:
                continue
            if answer.status >= 400:
                await _abort(context, answer, grpc.StatusCode.FAILED_PRECONDITION)
            return pb.DequeueResponse(**_message_fields(request.queueName, answer.json()))

    async def Get(self, request: Any, context: Context) -> Any:
        body = await self._call(context, "GET", _message(request.queueName, request.id))
        return pb.GetResponse(**_message_fields(request.queueName, body))

    async def Delete(self, request: Any, context: Context) -> Any:
        await self._call(context, "DELETE", _message(request.queueName, request.id))
        return pb.DeleteResponse(success=True)

    async def Ack(self, request: Any, context: Context) -> Any:
        await self._call(context, "POST", f"{_message(request.queueName, request.id)}/ack")
        return pb.AckResponse(success=True)

    async def Nack(self, request: Any, context: Context) -> Any:
        body: dict[str, Any] = {"priority": request.priority}
        if request.metadata:
            body["metadata"] = dict(request.metadata)
        await self._call(
            context, "POST", f"{_message(request.queueName, request.id)}/nack", body=body
        )
        return pb.NackResponse(success=True)

    async def UpdatePriority(self, request: Any, context: Context) -> Any:
        path = f"{_message(request.queueName, request.id)}/priority"
        await self._call(context, "PUT", path, body={"priority": request.priority})
        return pb.UpdatePriorityResponse(success=True)

    async def Touch(self, request: Any, context: Context) -> Any:
        await self._call(context, "POST", f"{_message(request.queueName, request.id)}/touch")
        return pb.TouchResponse(success=True)


async def _abort(context: Context, answer: RestAnswer, conflict: grpc.StatusCode) -> None:
    code, detail, trailers = status_of(answer, conflict)
    if trailers:
        context.set_trailing_metadata(trailers)
    await context.abort(code, detail)
