"""The Go server's ``DOQ`` gRPC service: each call made as its REST request (doq/grpc/rest.py).

Runs on the gRPC thread's asyncio loop (grpclib's server, doq/grpc/bridge.py); the REST request
runs in Trio through the portal. Answers are the REST answers in the service's messages; errors
are gRPC status codes (doq/grpc/status.py), not the Go server's ``Unknown``. The handlers are
mapped from the service's descriptor in the generated doq_pb2.py, so every method of the proto is
served by the method of the same name here.

Each request carries its call's ``Caller`` (``caller_of``): the ``authorization`` metadata goes
into the REST request as its header, so scopes are enforced once, by the table every HTTP request
is judged by (doq/api/access.py), and a 401 or 403 comes back as UNAUTHENTICATED or
PERMISSION_DENIED. The token is handed on, never logged.

DequeueStream keeps the Go server's protocol: the client's first request names the queue and
``ack``; the server sends one message for each request the client sends (the first included),
holding each until a message is ready by long polling on the leader (doq/longpoll.py), so a
stream is woken by the same events as a waiting REST dequeue, never by polling.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.server import Stream

from doq.grpc import doq_pb2 as pb
from doq.grpc.bridge import PortalClosed, TrioPortal
from doq.grpc.rest import NO_PEER, Caller, RestAnswer, RestClient, segment
from doq.grpc.status import EMPTY_QUEUE_STATUS, status_of
from doq.longpoll import WAIT_S_MAX

QUEUES = "/API/v1/queues"
SERVICE = pb.DESCRIPTOR.services_by_name["DOQ"]
Unary = Callable[[Any, Caller], Awaitable[Any]]


class CallFailed(Exception):
    """End the call with this status (and trailing metadata: Retry-After)."""

    def __init__(self, status: Status, detail: str, trailers: tuple[tuple[str, str], ...] = ()):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.trailers = trailers


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


class DoqServicer:
    """grpclib's servable: ``__mapping__`` names a handler for each method of ``queue.DOQ``."""

    def __init__(self, portal: TrioPortal, rest: RestClient) -> None:
        self._portal = portal
        self._rest = rest

    def __mapping__(self) -> dict[str, Handler]:
        handlers = {}
        for method in SERVICE.methods:
            implementation = getattr(self, method.name)
            streaming = method.client_streaming or method.server_streaming
            handlers[f"/{SERVICE.full_name}/{method.name}"] = Handler(
                implementation if streaming else _unary(implementation),
                Cardinality.STREAM_STREAM if streaming else Cardinality.UNARY_UNARY,
                getattr(pb, method.input_type.name),
                getattr(pb, method.output_type.name),
            )
        return handlers

    async def _call(
        self,
        caller: Caller,
        method: str,
        path: str,
        *,
        query: str = "",
        body: Any = None,
        conflict: Status = Status.FAILED_PRECONDITION,
    ) -> Any:
        """The REST answer's JSON body; raises ``CallFailed`` with the status it maps to."""
        answer = await self._answer(caller, method, path, query=query, body=body)
        if answer.status >= 400:
            raise CallFailed(*status_of(answer, conflict))
        return answer.json()

    async def _answer(
        self, caller: Caller, method: str, path: str, *, query: str = "", body: Any = None
    ) -> RestAnswer:
        try:
            call = functools.partial(
                self._rest.call, method, path, query=query, body=body, caller=caller
            )
            return await self._portal.run(call)
        except PortalClosed as exc:
            raise CallFailed(Status.UNAVAILABLE, str(exc)) from None

    # --- ids and queues -------------------------------------------------------------------------
    async def GenerateIDs(self, request: Any, caller: Caller) -> Any:
        body = await self._call(caller, "POST", "/API/v1/ids", body={"number": request.number})
        return pb.GenerateIDsResponse(success=True, ids=[int(i) for i in body["ids"]])

    async def CreateQueue(self, request: Any, caller: Caller) -> Any:
        settings = _settings_json(request.settings)
        body = {"name": request.name, "type": request.type, "settings": settings}
        await self._call(caller, "POST", QUEUES, body=body, conflict=Status.ALREADY_EXISTS)
        return pb.CreateQueueResponse(success=True)

    async def UpdateQueue(self, request: Any, caller: Caller) -> Any:
        body = {"settings": _settings_json(request.settings)}
        await self._call(caller, "PUT", f"{QUEUES}/{segment(request.name)}", body=body)
        return pb.UpdateQueueResponse(success=True)

    async def DeleteQueue(self, request: Any, caller: Caller) -> Any:
        await self._call(caller, "DELETE", f"{QUEUES}/{segment(request.name)}")
        return pb.DeleteQueueResponse(success=True)

    async def GetQueue(self, request: Any, caller: Caller) -> Any:
        return _queue_pb(await self._call(caller, "GET", f"{QUEUES}/{segment(request.name)}"))

    async def GetQueues(self, request: Any, caller: Caller) -> Any:
        body = await self._call(caller, "GET", QUEUES)
        queues = [q for q in body["queues"] if not request.type or q["type"] == request.type]
        return pb.GetQueuesResponse(queues=[_queue_pb(q) for q in queues])

    # --- messages -------------------------------------------------------------------------------
    async def Enqueue(self, request: Any, caller: Caller) -> Any:
        body = await self._call(
            caller, "POST", _messages(request.queueName), body=_enqueue_json(request)
        )
        return pb.EnqueueResponse(**_message_fields(request.queueName, body))

    async def EnqueueStream(self, stream: Stream[Any, Any]) -> None:
        """One answer for each request, in order; the first failure ends the call."""
        caller = caller_of(stream)
        try:
            async for request in stream:
                await stream.send_message(await self.Enqueue(request, caller))
        except CallFailed as failed:
            await _fail(stream, failed)

    async def Dequeue(self, request: Any, caller: Caller) -> Any:
        query = f"ack={'true' if request.ack else 'false'}"
        body = await self._call(caller, "GET", _messages(request.queueName), query=query)
        return pb.DequeueResponse(**_message_fields(request.queueName, body))

    async def DequeueStream(self, stream: Stream[Any, Any]) -> None:
        caller = caller_of(stream)
        first = None
        try:
            async for request in stream:
                first = first or request  # the Go server's protocol: the first names the queue
                await stream.send_message(await self._dequeue_waiting(first, caller))
        except CallFailed as failed:
            await _fail(stream, failed)

    async def _dequeue_waiting(self, request: Any, caller: Caller) -> Any:
        query = f"ack={'true' if request.ack else 'false'}&wait={WAIT_S_MAX}"
        path = _messages(request.queueName)
        while True:  # each round is held on the leader until a message is ready or the wait ends
            answer = await self._answer(caller, "GET", path, query=query)
            if answer.status == EMPTY_QUEUE_STATUS:
                continue
            if answer.status >= 400:
                raise CallFailed(*status_of(answer, Status.FAILED_PRECONDITION))
            return pb.DequeueResponse(**_message_fields(request.queueName, answer.json()))

    async def Get(self, request: Any, caller: Caller) -> Any:
        body = await self._call(caller, "GET", _message(request.queueName, request.id))
        return pb.GetResponse(**_message_fields(request.queueName, body))

    async def Delete(self, request: Any, caller: Caller) -> Any:
        await self._call(caller, "DELETE", _message(request.queueName, request.id))
        return pb.DeleteResponse(success=True)

    async def Ack(self, request: Any, caller: Caller) -> Any:
        await self._call(caller, "POST", f"{_message(request.queueName, request.id)}/ack")
        return pb.AckResponse(success=True)

    async def Nack(self, request: Any, caller: Caller) -> Any:
        body: dict[str, Any] = {"priority": request.priority}
        if request.metadata:
            body["metadata"] = dict(request.metadata)
        await self._call(
            caller, "POST", f"{_message(request.queueName, request.id)}/nack", body=body
        )
        return pb.NackResponse(success=True)

    async def UpdatePriority(self, request: Any, caller: Caller) -> Any:
        path = f"{_message(request.queueName, request.id)}/priority"
        await self._call(caller, "PUT", path, body={"priority": request.priority})
        return pb.UpdatePriorityResponse(success=True)

    async def Touch(self, request: Any, caller: Caller) -> Any:
        await self._call(caller, "POST", f"{_message(request.queueName, request.id)}/touch")
        return pb.TouchResponse(success=True)


def caller_of(stream: Stream[Any, Any]) -> Caller:
    """The call's credentials (its ``authorization`` metadata, as the client wrote it: the REST
    layer reads the scheme and the token) and the address of its connection."""
    value = stream.metadata.get("authorization") if stream.metadata is not None else None
    authorization = value.encode("utf-8", "replace") if isinstance(value, str) else None
    address = stream.peer.addr()  # (host, port), or 4 items for IPv6
    peer = (str(address[0]), int(address[1])) if address else NO_PEER
    return Caller(authorization, peer)


def _unary(implementation: Unary) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    async def handle(stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        try:
            response = await implementation(request, caller_of(stream))
        except CallFailed as failed:
            await _fail(stream, failed)
            return
        await stream.send_message(response)

    return handle


async def _fail(stream: Stream[Any, Any], failed: CallFailed) -> None:
    await stream.send_trailing_metadata(
        status=failed.status, status_message=failed.detail, metadata=failed.trailers or None
    )
