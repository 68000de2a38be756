"""Failover and retries without a server (httpx's MockTransport answers): which node the next
attempt goes to, what is retried, and that a retried enqueue sends the same ID."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from doq.client import Client, Unavailable
from doq.client.models import Server
from doq.client.routing import BACKOFF_S_MAX, RETRY_AFTER_S_MAX, Router, backoff_s

A, B = "http://a:1", "http://b:2"


def _servers(leader: str) -> httpx.Response:
    servers = [
        {
            "id": "a",
            "addr": "a:9",
            "leader_addr": "",
            "is_leader": leader == A,
            "suffrage": "Voter",
            "http_addr": "a:1",
        },
        {
            "id": "b",
            "addr": "b:9",
            "leader_addr": "",
            "is_leader": leader == B,
            "suffrage": "Voter",
            "http_addr": "b:2",
        },
    ]
    return httpx.Response(200, json={"servers": servers})


def _ids(request: httpx.Request, start: int = 1000) -> httpx.Response:
    number = json.loads(request.content)["number"]
    return httpx.Response(200, json={"ids": [str(start + i) for i in range(number)]})


def _enqueued(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["messages"]
    return httpx.Response(
        200, json={"results": [{"status": "ENQUEUED", "id": m["id"]} for m in items]}
    )


def _client(handler, servers=(A, B), **kw) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client(list(servers), http=http, rng=random.Random(7), **kw)


class _Recorder:
    def __init__(self):
        self.seen: list[tuple[str, str, bytes]] = []

    def note(self, request: httpx.Request) -> str:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.seen.append((base, request.url.path, request.content))
        return request.url.path


def test_a_lost_answer_to_an_enqueue_is_retried_with_the_same_id():
    rec = _Recorder()
    lost = []

    def handler(request):
        path = rec.note(request)
        if path.endswith("/servers"):
            return _servers(A)
        if path.endswith("/ids"):
            return _ids(request)
        if not lost:  # the first attempt reached the server; its answer is lost
            lost.append(request)
            raise httpx.ReadError("connection reset", request=request)
        return _enqueued(request)

    with _client(handler) as client:
        result = client.enqueue("q", "x")
    sends = [json.loads(c)["messages"][0]["id"] for _, p, c in rec.seen if p.endswith("/batch")]
    assert len(sends) == 2 and sends[0] == sends[1] == str(result.id) == "1000"


def test_writes_go_to_the_leader_and_fail_over_when_it_is_unreachable():
    rec = _Recorder()
    state = {"leader": A}

    def handler(request):
        path = rec.note(request)
        base = rec.seen[-1][0]
        if base == A and state["leader"] == B:
            raise httpx.ConnectError("refused", request=request)
        if path.endswith("/servers"):
            return _servers(state["leader"])
        return httpx.Response(200, json={"ids": ["5"]})

    with _client(handler) as client:
        assert client.generate_ids(1) == [5]
        assert client.leader_url == A
        state["leader"] = B  # A dies
        assert client.generate_ids(1) == [5]
        assert client.generate_ids(1) == [5]
        assert client.leader_url == B
    bases = [base for base, path, _ in rec.seen if path.endswith("/ids")]
    assert bases[0] == A and bases[1] == A and bases[2:] == [B, B]


def test_a_503_is_retried_after_retry_after_and_then_gives_up_with_unavailable():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "no leader"})

    client = _client(handler, servers=(A,), attempts_max=3)
    with client, pytest.raises(Unavailable) as failed:
        client.list_queues()
    assert len(calls) == 3 and "no leader" in str(failed.value)


def test_an_ack_whose_first_answer_was_lost_is_done_when_the_retry_finds_it_settled():
    answers = iter(["lost", 404])

    def handler(request):
        if request.url.path.endswith("/servers"):
            return _servers(A)
        answer = next(answers)
        if answer == "lost":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(answer, json={"detail": "message 1 not in flight in queue q"})

    with _client(handler) as client:
        assert client.ack("q", 1) is None


def test_an_ack_of_a_message_not_in_flight_is_an_error_when_nothing_was_lost():
    def handler(request):
        if request.url.path.endswith("/servers"):
            return _servers(A)
        return httpx.Response(404, json={"detail": "message 1 not in flight in queue q"})

    with _client(handler) as client, pytest.raises(Exception) as err:
        client.ack("q", 1)
    assert type(err.value).__name__ == "MessageNotFound"


def test_backoff_is_jittered_bounded_and_honours_retry_after():
    rng = random.Random(1)
    waits = [backoff_s(attempt, rng) for attempt in range(20)]
    assert all(0 <= w <= BACKOFF_S_MAX for w in waits)
    assert len(set(waits)) == len(waits)
    assert backoff_s(0, rng, retry_after_s=1.0) >= 1.0
    assert backoff_s(0, rng, retry_after_s=3600) <= RETRY_AFTER_S_MAX


def test_the_router_learns_the_leader_and_the_nodes_it_was_not_given():
    router = Router(["a:1"])
    router.learn(
        [
            Server("a", "a:9", "", False, "Voter", "a:1"),
            Server("b", "b:9", "", True, "Voter", "b:2"),
        ]
    )
    assert router.urls == [A, B] and router.pick(True) == B
    router.failed(B)
    assert router.leader is None and not router.discovered
    assert {router.pick(False), router.pick(False)} == {A, B}
