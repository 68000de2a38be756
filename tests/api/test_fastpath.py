"""The fast path (doq/api/fastpath.py) answers byte for byte as the Quart routes do.

Two one-node services, one app with the fast path and one without, both served by Hypercorn: the
same raw HTTP requests get the same raw responses (status line, headers, body; only Date is left
out), and the fast path really answered the requests it should (it is not equal by handing
everything over). Then the same through followers, which relay to a leader, and the metrics."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio

from doq.api import create_app
from doq.api.fastpath import FastPath, Route, route_of
from doq.rates import RateTracker
from doq.service import NotLeaderError

from ..support import free_port, single_node_service
from .support import api_settings, serve_app

QUEUES = "/API/v1/queues"
HOST = "doq.test:8001"
BODY_LIMIT_BYTES = 1024
TIMEOUT_S = 0.5  # the request deadline of these apps; one case waits for it
LONG_NAME = "n" * 1025


class Stalling:
    """The real service, except that enqueueing to queue "stall" never finishes."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def enqueue(self, queue: str, messages: Any) -> Any:
        if queue == "stall":
            await trio.sleep_forever()
        return await self._service.enqueue(queue, messages)


class Relaying:
    """A follower's service: enqueue and dequeue answer "not the leader" with the leader's
    address, as a real follower's do."""

    leader_http = ""

    def __init__(self, service: Any) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        raise NotLeaderError("node-leader", self.leader_http)

    async def dequeue(self, *args: Any, **kwargs: Any) -> Any:
        raise NotLeaderError("node-leader", self.leader_http)


def relaying_to(leader_http: str) -> type[Relaying]:
    return type("RelayingTo", (Relaying,), {"leader_http": leader_http})


class Leaderless(Relaying):
    """A follower that knows no leader: the routes wait for one."""

    leader_http = None  # type: ignore[assignment]

    @property
    def raft(self) -> Any:
        return attrs.evolve(NoRaft())

    def leader(self) -> None:
        return None


@attrs.frozen
class NoRaft:
    is_leader: bool = False


@attrs.define
class Served:
    address: str
    app: Any
    routes_called: list[str] = attrs.field(factory=list)


def count_routes(app: Any, served: Served) -> None:
    """Record every request the fast path hands to the Quart app."""
    fast = app.asgi_app
    while not isinstance(fast, FastPath):  # under the limits and auth layers (doq/api/limits.py)
        fast = fast.app
    inner = fast.app

    async def counting(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            served.routes_called.append(f"{scope['method']} {scope['path']}")
        await inner(scope, receive, send)

    fast.app = counting


@contextlib.asynccontextmanager
async def node(
    data_dir: str, *, fast_path: bool, wrapper: Any = Stalling, **settings: Any
) -> AsyncIterator[Served]:
    async with single_node_service(data_dir) as service, trio.open_nursery() as nursery:
        limits = {"max_body_bytes": BODY_LIMIT_BYTES, "request_timeout_s": TIMEOUT_S}
        app = create_app(
            wrapper(service), api_settings("node-0", fast_path=fast_path, **limits, **settings)
        )
        # The *_rps rates depend on when each node's sampler ran (wall clock): pinned at zero on
        # both, or the queue-info answers of two nodes differ by chance (this test compares
        # fronts, not samplers; tests/api/test_rates.py covers the rates).
        app.doq.rates = RateTracker(1, lambda: 0.0)
        served = Served(f"127.0.0.1:{free_port()}", app)
        if fast_path:
            count_routes(app, served)
        stop = trio.Event()
        await nursery.start(serve_app, app, served.address, stop)
        yield served
        stop.set()


def raw_request(
    method: str, target: str, body: bytes = b"", *headers: str, version: str = "1.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", f"Host: {HOST}", "Connection: close"]
    lines += [f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(address: str, request: bytes) -> bytes:
    """The raw response, without its Date header (the only part that may differ)."""
    host, port = address.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
        body_bytes = int(length[1]) if length and not request.startswith(b"HEAD ") else 0
        while len(body) < body_bytes:
            body += await stream.receive_some(65536)
    return re.sub(rb"\r\ndate: [^\r]*", b"", head + b"\r\n\r\n" + body)


def message(**fields: Any) -> bytes:
    return json.dumps({"priority": 1, "content": "x", **fields}).encode()


M = f"{QUEUES}/q/messages"
# (request, answered by the fast path?) in order; state carries from one to the next.
LEADER_CASES = [
    (raw_request("POST", QUEUES, b'{"name": "q", "type": "delayed"}'), False),
    (raw_request("POST", QUEUES, b'{"name": "stall", "type": "delayed"}'), False),
    (raw_request("POST", M, message(id="1", priority=5, metadata={"k": "v"})), True),
    (raw_request("POST", M, message(id="1", content="again")), True),  # the stored one
    (raw_request("POST", M, message(id="2", priority=3), "X-Forwarded-Host: elsewhere:9"), True),
    (raw_request("POST", M, message(id="3", group="")), True),
    (raw_request("POST", f"{QUEUES}/nope/messages", message()), True),  # 404
    (raw_request("POST", M), False),  # 400 body required
    (raw_request("POST", M, b"  \n"), False),
    (raw_request("POST", M, b'{"priority": 1,'), False),  # 400 not JSON
    (raw_request("POST", M, message(priority=-1)), False),  # 422
    (raw_request("POST", M, b'{"priority": 1}'), False),
    (raw_request("POST", M, message(extra=True)), False),
    (raw_request("POST", M, message(id="18446744073709551616")), False),
    (raw_request("POST", M, message(id="abc")), False),
    (raw_request("POST", M, message(id="4", priority=2.0)), False),  # integral float: accepted
    (raw_request("POST", M, message(content="x" * BODY_LIMIT_BYTES)), False),  # 413
    (raw_request("POST", f"{M}?debug=1", message(id="5")), False),
    (raw_request("POST", f"{QUEUES}/{LONG_NAME}/messages", message()), False),  # 422
    (raw_request("POST", f"{QUEUES}/stall/messages", message(id="6")), True),  # 503 deadline
    (raw_request("POST", M, message(id="7"), version="1.0"), False),
    (raw_request("GET", f"{M}?ack=false"), True),
    (raw_request("GET", f"{M}?ack=true", b"", "X-Forwarded-Host: elsewhere:9"), True),
    (raw_request("GET", M), True),
    (raw_request("GET", f"{M}?ack=1"), True),
    (raw_request("GET", f"{M}?ack=perhaps"), False),  # 422
    (raw_request("GET", f"{M}?ack=true&x=1"), False),
    (raw_request("GET", f"{M}?ack=true", b"{}"), False),
    (raw_request("GET", f"{QUEUES}/nope/messages?ack=true"), True),  # 404
    (raw_request("GET", f"{M}?ack=true"), True),
    (raw_request("GET", f"{M}?ack=true"), True),  # 400 empty
    (raw_request("HEAD", f"{M}?ack=true"), False),
    (raw_request("PUT", M, message()), False),  # 405
    (raw_request("POST", f"{M}/", message()), False),  # 404 unknown path
    (raw_request("GET", f"{QUEUES}/q"), False),
]


async def test_the_fast_path_answers_byte_for_byte_as_the_routes(tmp_path):
    async with (
        node(str(tmp_path / "fast"), fast_path=True) as fast,
        node(str(tmp_path / "routes"), fast_path=False) as routes,
    ):
        answered_statuses = set()
        for request, answered_fast in LEADER_CASES:
            handed_before = len(fast.routes_called)
            fast_answer = await exchange(fast.address, request)
            routes_answer = await exchange(routes.address, request)
            assert fast_answer == routes_answer, request
            assert (len(fast.routes_called) == handed_before) == answered_fast, request
            if answered_fast:
                answered_statuses.add(int(fast_answer.split(b" ")[1]))
        # Every status the fast path answers by itself was compared.
        assert answered_statuses == {200, 400, 404, 503}
        assert metric_lines(fast.app) == metric_lines(routes.app)


def metric_lines(app: Any) -> list[str]:
    text = app.doq.metrics.exposition().decode()
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(("doq_http_requests_total", "doq_http_request_duration_seconds_count"))
    )


FOLLOWER_CASES = [
    raw_request("POST", f"{QUEUES}/d/messages", message(id="10", metadata={"a": "b"})),
    raw_request("POST", f"{QUEUES}/d/messages", message(id="10")),  # the stored message
    raw_request("POST", f"{QUEUES}/nope/messages", message()),
    raw_request("GET", f"{QUEUES}/nope/messages?ack=true"),
    raw_request("POST", f"{QUEUES}/d/messages", b"{}"),  # 422 on the follower itself
]


async def test_followers_relay_byte_for_byte_the_same_with_and_without_the_fast_path(tmp_path):
    async with node(str(tmp_path / "leader"), fast_path=True) as leader:
        relaying = relaying_to(leader.address)
        async with (
            node(str(tmp_path / "f1"), fast_path=True, wrapper=relaying) as fast,
            node(str(tmp_path / "f2"), fast_path=False, wrapper=relaying) as routes,
        ):
            for name in ("d", "d1", "d2"):
                body = json.dumps({"name": name, "type": "delayed"}).encode()
                await exchange(leader.address, raw_request("POST", QUEUES, body))
            for request in FOLLOWER_CASES:
                assert await exchange(fast.address, request) == await exchange(
                    routes.address, request
                ), request
            # The same message in two queues: each follower dequeues its own copy.
            for queue in ("d1", "d2"):
                put = raw_request("POST", f"{QUEUES}/{queue}/messages", message(id="20"))
                await exchange(leader.address, put)
            fast_got = await exchange(fast.address, raw_request("GET", f"{QUEUES}/d1/messages"))
            routes_got = await exchange(routes.address, raw_request("GET", f"{QUEUES}/d2/messages"))
            assert fast_got == routes_got and b'"DEQUEUED"' in fast_got
            assert f"http://{HOST}/schemas/MessageBody.json".encode() in fast_got
            assert len(fast.routes_called) == 1  # only the 422 was not relayed by the fast path


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("POST", "/API/v1/queues/q/messages", b"", Route(True, "q")),
        ("GET", "/API/v1/queues/q/messages", b"", Route(False, "q", False)),
        ("GET", "/API/v1/queues/q/messages", b"ack=true", Route(False, "q", True)),
        ("GET", "/API/v1/queues/q/messages", b"ack=F", Route(False, "q", False)),
        ("GET", "/API/v1/queues/q/messages", b"ack=", Route(False, "q", False)),
        ("GET", "/API/v1/queues/a b%/messages", b"ack=1", Route(False, "a b%", True)),
        ("GET", "/API/v1/queues/q/messages", b"ack=yes", None),
        ("GET", "/API/v1/queues/q/messages", b"ack=true&ack=false", None),
        ("POST", "/API/v1/queues/q/messages", b"x=1", None),
        ("HEAD", "/API/v1/queues/q/messages", b"", None),
        ("DELETE", "/API/v1/queues/q/messages", b"", None),
        ("POST", "/API/v1/queues//messages", b"", None),
        ("POST", "/API/v1/queues/a/b/messages", b"", None),
        ("POST", "/API/v1/queues/q/messages/", b"", None),
        ("POST", "/API/v1/queues/q/messages/1/ack", b"", None),
        ("POST", "/API/v1/queues", b"", None),
        ("POST", "/api/v1/queues/q/messages", b"", None),
        ("POST", f"/API/v1/queues/{LONG_NAME}/messages", b"", None),
    ],
)
def test_which_requests_take_the_fast_path(method, path, query, expected):
    scope = {"method": method, "path": path, "query_string": query, "http_version": "1.1"}
    assert route_of(scope) == expected


def test_only_http_1_1_without_a_root_path_takes_the_fast_path():
    scope = {"method": "GET", "path": M, "query_string": b"", "http_version": "1.1"}
    assert route_of({**scope, "http_version": "1.0"}) is None
    assert route_of({**scope, "http_version": "2"}) is None
    assert route_of({**scope, "root_path": "/prefix"}) is None
    assert route_of({**scope, "root_path": ""}) == Route(False, "q")


def asgi_scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", HOST.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }


async def call_asgi(app: Any, scope: dict[str, Any], chunks: list[bytes]) -> tuple[int, bytes]:
    """Send the body in ``chunks`` (one ASGI message each); (status, body) of the answer."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    await app(scope, receive, send)
    body = b"".join(event.get("body", b"") for event in sent[1:])
    return sent[0]["status"], body


async def test_a_body_in_several_messages_is_read_whole_and_a_large_one_is_replayed_to_the_routes(
    tmp_path,
):
    async with node(str(tmp_path), fast_path=True) as served:
        await exchange(served.address, LEADER_CASES[0][0])  # queue q
        served.routes_called.clear()
        body = message(id="50", content="y" * 200)
        status, answer = await call_asgi(
            served.app, asgi_scope("POST", M), [body[:7], body[7:100], body[100:]]
        )
        assert status == 200 and json.loads(answer)["id"] == "50"
        assert served.routes_called == []
        large = message(content="z" * BODY_LIMIT_BYTES)
        status, answer = await call_asgi(
            served.app, asgi_scope("POST", M), [large[:600], large[600:]]
        )
        assert status == 413 and served.routes_called == [f"POST {M}"]
        assert f"({BODY_LIMIT_BYTES} bytes)" in json.loads(answer)["detail"]


async def test_a_request_that_waits_for_a_leader_keeps_the_deadline_it_had(tmp_path):
    """No leader known: the fast path waits for one with the routes' own decision
    (doq/api/serving.py), only for what is left of the request's deadline."""
    async with node(str(tmp_path), fast_path=True, wrapper=Leaderless) as served:
        scope = asgi_scope("POST", M)
        started_s = trio.current_time()
        scope["doq.deadline"] = started_s + TIMEOUT_S / 5
        status, answer = await call_asgi(served.app, scope, [message()])
        elapsed_s = trio.current_time() - started_s
        assert status == 503 and "may or may not" in json.loads(answer)["detail"]
        assert served.routes_called == []
        assert TIMEOUT_S / 5 <= elapsed_s < TIMEOUT_S
