"""Caps on what one node serves at once, so that a flood of requests gets 429s, not a node that
runs out of memory (docs/api.md, "429 Too Many Requests").

``InFlightLimits`` wraps the whole ASGI application, outside authentication, so that even
unauthenticated floods are bounded. Each request holds a slot while it is handled:
- every HTTP request a slot of the node's ``requests_in_flight_max``, and one of its connection's
  ``requests_per_connection_max`` (HTTP/2 multiplexes many requests on one connection);
- a long poll (a GET with a ``wait`` query parameter) a slot of ``long_polls_in_flight_max``
  instead of the general one, since it mostly waits;
- a WebSocket stream a slot of ``websocket_streams_max`` for as long as it is open.
Over a limit the answer is 429 with Retry-After, as a problem document (a WebSocket is closed with
1013, "try again later"). The caps are named in doq/caps.py. The health probes are never refused:
a kubelet must see a busy node as alive and ready, or it restarts the pod and makes the overload
worse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from doq.api.errors import ERROR_MODEL, ApiProblem, problem_asgi_headers, problem_body
from doq.api.links import schema_base_of_scope, schema_url_at
from doq.caps import InFlightCaps

LIMITED_RETRY_AFTER_S = 1
UNLIMITED_PATHS = frozenset(("/livez", "/readyz", "/healthz"))
_WAIT_PARAMETER = b"wait="

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class InFlightLimits:
    def __init__(self, app: App, caps: InFlightCaps) -> None:
        self.app = app
        self.caps = caps
        self.requests = 0
        self.long_polls = 0
        self.websockets = 0
        self.per_connection: dict[Any, int] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
        elif _is_long_poll(scope):
            await self._long_poll(scope, receive, send)
        else:
            await self._request(scope, receive, send)

    async def _request(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        caps = self.caps
        connection = scope.get("client")
        on_connection = self.per_connection.get(connection, 0)
        if self.requests >= caps.requests_in_flight_max:
            await _refuse(scope, send, "the node is handling as many requests as it may")
            return
        if on_connection >= caps.requests_per_connection_max:
            await _refuse(scope, send, "this connection has as many requests in flight as it may")
            return
        self.requests += 1
        self.per_connection[connection] = on_connection + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.requests -= 1
            left = self.per_connection[connection] - 1
            if left:
                self.per_connection[connection] = left
            else:
                del self.per_connection[connection]

    async def _long_poll(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.long_polls >= self.caps.long_polls_in_flight_max:
            await _refuse(scope, send, "the node holds as many long polls as it may")
            return
        self.long_polls += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.long_polls -= 1

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.websockets >= self.caps.websocket_streams_max:
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        self.websockets += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.websockets -= 1


def _is_long_poll(scope: dict[str, Any]) -> bool:
    if scope["method"] != "GET":
        return False
    query: bytes = scope.get("query_string", b"")
    return any(part.startswith(_WAIT_PARAMETER) for part in query.split(b"&"))


async def _refuse(scope: dict[str, Any], send: Any, detail: str) -> None:
    problem = ApiProblem(429, detail, retry_after_s=LIMITED_RETRY_AFTER_S)
    body = problem_body(problem, schema_url_at(schema_base_of_scope(scope), ERROR_MODEL))
    headers = problem_asgi_headers(problem, len(body))
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
