"""The fast path: enqueue and dequeue answered from ASGI directly, in front of the Quart app.

Why: on the leader, Quart-Trio's own handling of a request (request and response objects, URL
routing, contexts, a nursery per request, Werkzeug headers) cost about 450-540 us of CPU, most of
the ~625 us an enqueue took, while the Raft round and LMDB took about 100 us; the leader's one
core was the cluster's limit. The API layer's own work for one enqueue, measured on a stub
service, is about 17 us here against about 185 us through the Quart routes; every other request
goes to the Quart app untouched.

What it serves: ``POST /API/v1/queues/{name}/messages`` and ``GET ...?ack=bool``, through the one
serve decision the routes use (doq/api/serving.py): the service answers on the leader; a follower
relays the request to the leader, waits for a leader when none is known, tries a relay that never
reached the leader again, or (forwarding off) names the leader, exactly as the routes do.

The rule that keeps its answers the routes' answers: it answers only what the shared decision and
the service answer. Anything irregular before the service is called (a body too large or not valid
JSON, a failed validation, a queue name too long, a query other than ``ack``, HTTP other than 1.1,
...) is handed to the Quart app with the body it read replayed, so the routes produce that answer,
with the deadline the request already has. It answers itself: the service's result, the service's
errors and the decision's problems (through the shared problem functions), the deadline's 503, and
a relayed answer. The message, operation and forwarding tests
run with it on and off, and tests/api/test_fastpath.py compares the raw bytes of both.

One difference no client can see: a client that disconnects mid-request makes Quart-Trio cancel
the route, while the fast path lets the service call finish (a proposal already queued commits
either way) and Hypercorn drops the answer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import msgspec
import trio
from quart.utils import encode_headers

from doq.api.context import ApiContext
from doq.api.dispatch import relayed_response
from doq.api.errors import (
    ERROR_MODEL,
    ApiProblem,
    problem_asgi_headers,
    problem_body,
)
from doq.api.forwarding import Relayed, RelayRequest
from doq.api.links import schema_base_of_scope, schema_url_at
from doq.api.receipts import RECEIPT_HEADER, receipt_of
from doq.api.render import JSON_CONTENT_TYPE, MESSAGE_BODY, message_body
from doq.api.routes_messages import MESSAGES_PATH, message_input
from doq.api.schemas import EnqueueRequest
from doq.api.serving import ACK_QUERIES, messages_queue, request_deadline, unanswered_in_time
from doq.api.validation import decoder_for
from doq.service import MessageInput
from doq.state.results import Dequeued, Enqueued, Result

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HTTP_VERSION = "1.1"  # HTTP/1.0 requests get a default Host from Quart: left to it
_JSON_CONTENT_TYPE = JSON_CONTENT_TYPE.encode()
_ENCODER = msgspec.json.Encoder()
_RECEIPT_KEY = RECEIPT_HEADER.lower().encode()

log = logging.getLogger("doq.api")


@attrs.frozen
class Route:
    """An enqueue (``ack`` unused) or a dequeue of queue ``queue``."""

    is_enqueue: bool
    queue: str
    ack: bool = False


@attrs.frozen
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def route_of(scope: Scope) -> Route | None:
    """The fast route this request takes, or None for the Quart app's routes."""
    method = scope["method"]
    if method not in ("POST", "GET") or scope["http_version"] != HTTP_VERSION:
        return None
    if scope.get("root_path"):
        return None
    queue = messages_queue(scope["path"])
    if queue is None:
        return None
    query: bytes = scope["query_string"]
    if method == "POST":
        return Route(is_enqueue=True, queue=queue) if not query else None
    ack = ACK_QUERIES.get(query)  # any other query string is the routes' to judge
    return Route(is_enqueue=False, queue=queue, ack=ack) if ack is not None else None


def enqueue_input(body: bytes) -> MessageInput | None:
    """The message of a regular enqueue body; None for anything the routes must judge."""
    try:
        return message_input(decoder_for(EnqueueRequest).decode(body))
    except (msgspec.DecodeError, msgspec.ValidationError, ApiProblem):
        return None


class FastPath:
    """ASGI middleware: the fast routes, then ``app`` for everything else (and for what the fast
    routes hand over). Installed as the Quart app's ``asgi_app`` by ``create_app``."""

    def __init__(self, app: AsgiApp, api: ApiContext) -> None:
        self.app = app
        self._api = api
        self._timeout_s = api.settings.request_timeout_s
        self._max_body_bytes = api.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        deadline = request_deadline(scope, self._timeout_s)
        received: list[Message] = []
        body: bytes | None = None
        answer: Answer | None = None
        # One cancel scope for the whole request (each costs a few microseconds): the body is
        # read and the service answers within the request's deadline.
        with trio.move_on_at(deadline) as deadline_scope:
            body = await _read_body(receive, received, self._max_body_bytes)
            if body is not None:
                answer = await self._answer(scope, route, body, deadline)
        if deadline_scope.cancelled_caught and body is not None:
            answer = _problem(scope, unanswered_in_time(self._timeout_s, is_write=True))
        if answer is None:  # the routes answer it (a body cut short by the deadline too)
            await self.app(scope, _replaying(received, receive), send)
            return
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})
        duration_s = time.perf_counter() - started_s
        self._api.requests.record(scope["method"], MESSAGES_PATH, answer.status, duration_s)

    async def _answer(
        self, scope: Scope, route: Route, body: bytes, deadline: float
    ) -> Answer | None:
        """The answer, or None to hand the request to the routes. Called within the deadline;
        the leader / relay / wait decision is the routes' own (doq/api/serving.py)."""
        service = self._api.service
        call: Callable[[], Awaitable[Result]]
        if route.is_enqueue:
            message = enqueue_input(body)
            if message is None:
                return None
            call = functools.partial(service.enqueue, route.queue, (message,))
        elif body:
            return None  # a GET with a body: unusual enough for the routes
        else:
            call = functools.partial(service.dequeue, route.queue, ack=route.ack)
        relay = functools.partial(RelayRequest.of_scope, scope, body)
        decision = self._api.dispatcher.decision
        try:
            outcome = await decision.serve(call, relay, is_write=True, deadline=deadline)
        except ApiProblem as problem:
            return _problem(scope, problem)
        except Exception as exc:  # a bug: logged, and a problem, as the routes answer it
            log.error("unexpected error in %s %s", scope["method"], scope["path"], exc_info=exc)
            return _problem(scope, ApiProblem(500, "internal error; it has been logged"))
        if isinstance(outcome, Relayed):
            response = relayed_response(outcome)
            return Answer(outcome.status, encode_headers(response.headers), outcome.body)
        return _message_answer(scope, route, outcome)


def _message_answer(scope: Scope, route: Route, result: Result) -> Answer:
    if route.is_enqueue:
        assert isinstance(result, Enqueued), result
        status = "ENQUEUED"
    else:
        assert isinstance(result, Dequeued), result
        status = "DEQUEUED"
    message = result.messages[0]
    schema = schema_url_at(schema_base_of_scope(scope), MESSAGE_BODY)
    body = _ENCODER.encode(message_body(status, message, schema))
    headers = [(b"content-type", _JSON_CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
    if not route.is_enqueue:  # after the others, as Quart sends the route's headers
        headers.append((_RECEIPT_KEY, receipt_of(message).encode()))
    return Answer(200, headers, body)


def _problem(scope: Scope, problem: ApiProblem) -> Answer:
    body = problem_body(problem, schema_url_at(schema_base_of_scope(scope), ERROR_MODEL))
    return Answer(problem.status, problem_asgi_headers(problem, len(body)), body)


async def _read_body(receive: Receive, received: list[Message], limit_bytes: int) -> bytes | None:
    """The whole body, keeping every message in ``received``; None when the client left or
    the body is larger than ``limit_bytes`` (the routes answer those)."""
    chunks: list[bytes] = []
    size_bytes = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size_bytes += len(chunk)
        if size_bytes > limit_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
