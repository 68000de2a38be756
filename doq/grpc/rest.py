"""A request to this node's own REST API, in process: how every gRPC call is served.

Why through the REST API and not beside it: the REST routes are where a request is validated,
served by the one serve decision (doq/api/serving.py: here on the leader, relayed to the leader
from a follower, waiting for a leader when none is known, within a deadline), and held by long
polling (doq/longpoll.py). A gRPC call made into the same ASGI application (no socket, no HTTP
parsing) gets the very same answer a REST client gets, so gRPC cannot drift from REST, and a
follower serves any call by the relay the HTTP side uses. The enqueue and dequeue calls, the
busy ones, are answered by the fast path in front of Quart (doq/api/fastpath.py).
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
        self, method: str, raw_path: str, *, query: str = "", body: Any = None
    ) -> RestAnswer:
        """``raw_path`` as a client writes it (a queue name percent-encoded: ``segment``)."""
        data = b"" if body is None else _ENCODER.encode(body)
        path = unquote(raw_path)
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
            "headers": [
                (b"host", self.host.encode("ascii")),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode("ascii")),
            ],
            "client": ("127.0.0.1", 0),
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
