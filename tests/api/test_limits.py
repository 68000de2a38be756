"""The in-flight caps (doq/api/limits.py): over each named limit the answer is 429 with
Retry-After as a problem document (a WebSocket is closed with 1013), what is under the limit is
served, slots come back when requests end, and the health probes are never refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from doq.api.limits import InFlightLimits
from doq.caps import InFlightCaps

from .support import api_app


class Held:
    """An inner app whose requests wait until released."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.entered = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.entered += 1
        await self.release.wait()
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def scope(path: str = "/API/v1/queues", *, client=("10.0.0.1", 1000), query=b"", kind="http"):
    return {
        "type": kind,
        "scheme": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"host", b"node:8000")],
        "client": client,
    }


async def call(app: Any, s: dict) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(s, receive, send)
    return sent


def status_of(sent: list[dict]) -> int:
    return sent[0]["status"]


async def fill(nursery, app, held: Held, scopes: list[dict]) -> list[list[dict]]:
    answers: list[list[dict]] = []

    async def one(s: dict) -> None:
        answers.append(await call(app, s))

    for s in scopes:
        nursery.start_soon(one, s)
    while held.entered < len(scopes):
        await trio.sleep(0)
    return answers


def assert_429(sent: list[dict]) -> None:
    assert status_of(sent) == 429
    headers = dict(sent[0]["headers"])
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/problem+json"
    assert json.loads(sent[1]["body"])["status"] == 429


@pytest.mark.parametrize(
    ("caps", "held_scopes", "refused_scope"),
    [
        (
            InFlightCaps(requests_in_flight_max=2),
            [scope(client=("a", 1)), scope(client=("b", 2))],
            scope(client=("c", 3)),
        ),
        (
            InFlightCaps(requests_per_connection_max=2),
            [scope(), scope()],
            scope(),
        ),
        (
            InFlightCaps(long_polls_in_flight_max=1),
            [scope(path="/API/v1/queues/q/messages", query=b"ack=true&wait=30")],
            scope(path="/API/v1/queues/q/messages", query=b"wait=5", client=("z", 9)),
        ),
    ],
    ids=["global", "per-connection", "long-polls"],
)
async def test_over_a_limit_is_429_with_retry_after_and_slots_come_back(
    caps, held_scopes, refused_scope
):
    held = Held()
    app = InFlightLimits(held, caps)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            answers = await fill(nursery, app, held, held_scopes)
            assert_429(await call(app, refused_scope))
            held.release.set()
        assert [status_of(a) for a in answers] == [200] * len(held_scopes)
        assert app.requests == app.long_polls == 0 and app.per_connection == {}
        assert status_of(await call(app, refused_scope)) == 200  # the slots came back


async def test_the_health_probes_are_never_refused():
    held = Held()
    app = InFlightLimits(held, InFlightCaps(requests_in_flight_max=1))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await fill(nursery, app, held, [scope()])
            probe: list[list[dict]] = []
            nursery.start_soon(lambda: _append(probe, call(app, scope(path="/readyz"))))
            while held.entered < 2:  # the probe reached the app past the full cap
                await trio.sleep(0)
            held.release.set()
        assert status_of(probe[0]) == 200


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_websocket_streams_over_the_limit_are_closed_try_again_later():
    held = Held()
    app = InFlightLimits(held, InFlightCaps(websocket_streams_max=1))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await fill(nursery, app, held, [scope(kind="websocket")])
            assert await call(app, scope(kind="websocket")) == [
                {"type": "websocket.close", "code": 1013}
            ]
            held.release.set()
        assert app.websockets == 0


async def test_the_app_is_capped_in_front_of_everything(tmp_path):
    async with api_app(str(tmp_path), caps=InFlightCaps(requests_in_flight_max=1)) as h:
        assert isinstance(h.app.asgi_app, InFlightLimits)
        assert h.app.asgi_app.caps.requests_in_flight_max == 1
        assert (await h.client.get("/API/v1/queues")).status_code == 200
