"""A request to this node's own REST API, in process: how every gRPC call is served.

Why through the REST API and not beside it: the REST routes are where a request is validated,
served by the one serve decision (doq/api/serving.py: here on the leader, relayed to the leader
from a follower, waiting for a leader when none is known, within a deadline), and held by long
polling (doq/longpoll.py). A gRPC call made into the same ASGI application (no socket, no HTTP
parsing) gets the very same answer a REST client gets, so gRPC cannot drift from REST, and a
follower serves any call by the relay the HTTP side uses. The enqueue and dequeue calls, the
busy ones, are answered by the fast path in front of Quart (doq/api/fastpath.py).

The request carries the call's credentials and peer (``Caller``): its ``authorization`` metadata
becomes the request's ``Authorization`` header, so the bearer-token layer in front of the
application (doq/api/auth.py) judges a gRPC call by the same table as an HTTP request, and a
follower relays the header to the leader as it does an HTTP client's. The peer's address is the
request's client, so the per-connection in-flight cap (doq/api/limits.py) counts each gRPC
connection apart, as it counts each HTTP connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import attrs
import msgspec
import trio

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


NO_PEER = ("127.0.0.1", 0)  # a caller whose address grpclib could not tell


@attrs.frozen(repr=False)
class Caller:
    """Who made a call: its ``authorization`` metadata (a secret: never in a repr or a log) and
    the address of its connection."""

    authorization: bytes | None = None
    peer: tuple[str, int] = NO_PEER

    def __repr__(self) -> str:
        credentials = "with authorization" if self.authorization is not None else "anonymous"
        return f"Caller({self.peer[0]}:{self.peer[1]}, {credentials})"


ANONYMOUS = Caller()


def segment(name: str) -> str:
    """A queue name as one path segment (every character but unreserved ones encoded)."""
    return quote(name, safe="")


@attrs.frozen
class RestAnswer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    def json(self) -> Any:
        return _DECODER.decode(self.body) if self.body else None


@attrs.define
class RestClient:
    """Calls ``app`` (the node's ASGI application) as an HTTP client at ``host`` would."""

    app: Asgi
    host: str  # the node's advertised HTTP address: links in answers name it

    async def call(
        self,
        method: str,
        raw_path: str,
        *,
        query: str = "",
        body: Any = None,
        caller: Caller = ANONYMOUS,
    ) -> RestAnswer:
        """``raw_path`` as a client writes it (a queue name percent-encoded: ``segment``)."""
        data = b"" if body is None else _ENCODER.encode(body)
        path = unquote(raw_path)
        headers = [
            (b"host", self.host.encode("ascii")),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode("ascii")),
        ]
        if caller.authorization is not None:
            headers.append((b"authorization", caller.authorization))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": headers,
            "client": caller.peer,
            "server": ("127.0.0.1", 0),
            "extensions": {},
        }
        exchange = _Exchange(data)
        await self.app(scope, exchange.receive, exchange.send)
        return RestAnswer(exchange.status, b"".join(exchange.chunks), tuple(exchange.headers))


class _Exchange:
    """One request's ASGI receive and send: the body at once, a disconnect once answered."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self._answered = trio.Event()
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._answered.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self._answered.set()
