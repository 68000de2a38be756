"""Follower-to-leader forwarding: a real 3-node cluster over HTTP, and a follower whose leader
misbehaves (nothing listening, a connection cut after the request, a leader that answers 503)."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from doq.api.forwarding import RelayRequest, hops_of
from doq.service import NotLeaderError

from ..support import free_port
from .support import api_app, followers_of, leader_of, serve_app, served_cluster

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"
SHORT_TIMEOUT_S = 0.5


async def test_requests_through_followers_behave_as_through_the_leader(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        first, second = followers_of(nodes)
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{first.url}{QUEUES}", json={"name": "q", "type": "fair", "settings": {}}
            )
            assert created.status_code == 200
            # The leader names schemas on the node the client talked to.
            assert created.json()["$schema"].startswith(f"http://{first.http_address}/schemas/")
            enqueued = await http.post(
                f"{first.url}{QUEUES}/q/messages", json={"priority": 1, "content": "x"}
            )
            message_id = enqueued.json()["id"]
            dequeued = await http.get(f"{second.url}{QUEUES}/q/messages")
            assert dequeued.json()["id"] == message_id
            got = await http.get(f"{first.url}{QUEUES}/q/messages/{message_id}")
            assert got.json()["status"] == "GOT"
            acked = await http.post(f"{second.url}{QUEUES}/q/messages/{message_id}/ack")
            assert acked.json() == {
                "$schema": f"http://{second.http_address}/schemas/MessageIdBody.json",
                "status": "ACKNOWLEDGED",
                "id": message_id,
            }
            empty = await http.get(f"{first.url}{QUEUES}/q/messages")
            assert empty.status_code == 400
            assert empty.headers["Content-Type"] == "application/problem+json"
            assert empty.json()["errors"] == [{"message": "Queue is empty: q"}]
            assert empty.headers["X-Doq-Problem"] == "queue_empty"  # clients type errors by it
            info = await http.get(f"{second.url}{QUEUES}/q")
            assert info.json()["total"] == 0


async def test_backup_and_multipart_restore_through_followers(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        first, second = followers_of(nodes)
        async with httpx.AsyncClient() as http:
            body = {"name": "q", "type": "delayed", "settings": {}}
            await http.post(f"{first.url}{QUEUES}", json=body)
            message = {"priority": 1, "content": "kept"}
            await http.post(f"{first.url}{QUEUES}/q/messages", json=message)
            backup = await http.post(f"{first.url}/db/backup", json={"since": 0})
            assert backup.status_code == 200
            await http.post(f"{second.url}{QUEUES}/q/messages", json=message)
            restored = await http.post(
                f"{second.url}/db/restore", files={"file": ("backup.db", backup.content)}
            )
            assert restored.status_code == 200, restored.text
            assert restored.json()["status"] == "SUCCEDED"
            assert (await http.get(f"{second.url}{QUEUES}/q")).json()["total"] == 1


async def test_leave_through_a_follower_reaches_the_leader_and_servers_agree(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        through, leaving = followers_of(nodes)
        async with httpx.AsyncClient() as http:
            listed = (await http.get(f"{through.url}/API/v1/cluster/servers")).json()
            assert {s["id"] for s in listed["servers"]} == {n.node_id for n in nodes}
            assert [s["id"] for s in listed["servers"] if s["is_leader"]] == [leader.node_id]
            left = await http.post(
                f"{through.url}/API/v1/cluster/leave", json={"id": leaving.node_id}
            )
            assert left.status_code == 200 and left.json()["id"] == leaving.node_id
            remaining = {s.id for s in leader.service.servers()}
            assert remaining == {leader.node_id, through.node_id}


async def test_a_write_through_a_follower_reaches_the_next_leader_when_the_old_one_is_gone(
    tmp_path,
):
    async with served_cluster(str(tmp_path), request_timeout_s=10) as nodes:
        old_leader = leader_of(nodes)
        through, successor = followers_of(nodes)
        old_leader.stop_http.set()  # its HTTP is gone; its Raft still runs until the transfer
        async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
            answers: list[httpx.Response] = []
            nursery.start_soon(create_queue_through, http, through.url, answers, 20)
            await trio.testing.wait_all_tasks_blocked()
            await old_leader.service.raft.transfer_leadership(successor.node_id)
        (answer,) = answers
        assert answer.status_code == 200, answer.text
        assert successor.service.raft.is_leader
        assert successor.service.state.queue_info("q") is not None


async def create_queue_through(
    http: httpx.AsyncClient, url: str, answers: list[httpx.Response], timeout_s: float
) -> None:
    """Creates queue "q" through the node at ``url``; the answer goes to ``answers``."""
    body = {"name": "q", "type": "delayed", "settings": {}}
    answers.append(await http.post(f"{url}{QUEUES}", json=body, timeout=timeout_s))


class Follower:
    """The real service, except that the named operations answer "not the leader" with the
    given leader address (``times`` times, then they are served)."""

    def __init__(self, leader_http, *names, times=None):
        self.leader_http = leader_http
        self.names = set(names)
        self.times = times

    def __call__(self, service):
        self._service = service
        return self

    def __getattr__(self, name):
        real = getattr(self._service, name)
        if name not in self.names:
            return real

        async def not_leader(*args, **kwargs):
            if self.times is not None:
                if self.times == 0:
                    return await real(*args, **kwargs)
                self.times -= 1
            raise NotLeaderError("node-x", self.leader_http)

        return not_leader


async def cutting_server(task_status=trio.TASK_STATUS_IGNORED, *, counter):
    """Accepts connections, reads a request, and closes without answering."""

    async def handle(stream):
        async with stream:
            data = await stream.receive_some(65536)
            if data:
                counter.append(data)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    task_status.started(f"127.0.0.1:{port}")
    await trio.serve_listeners(handle, listeners)


async def test_a_write_whose_relay_was_cut_is_not_resent_and_answers_outcome_unknown(tmp_path):
    requests: list[bytes] = []
    async with trio.open_nursery() as nursery:
        leader_http = await nursery.start(
            lambda task_status: cutting_server(task_status, counter=requests)
        )
        follower = Follower(leader_http, "enqueue", "list_queues")
        async with api_app(str(tmp_path), service_wrapper=follower) as api:
            response = await api.client.post(
                f"{QUEUES}/q/messages", json={"priority": 1, "content": "x"}
            )
            assert response.status_code == 503 and response.headers["Retry-After"] == "1"
            assert "may or may not have been applied" in (await response.get_json())["detail"]
            assert len(requests) == 1
        nursery.cancel_scope.cancel()


async def test_a_read_whose_relay_was_cut_is_retried_until_the_deadline(tmp_path):
    requests: list[bytes] = []
    async with trio.open_nursery() as nursery:
        leader_http = await nursery.start(
            lambda task_status: cutting_server(task_status, counter=requests)
        )
        follower = Follower(leader_http, "list_queues")
        async with api_app(
            str(tmp_path), service_wrapper=follower, request_timeout_s=SHORT_TIMEOUT_S
        ) as api:
            response = await api.client.get(QUEUES)
            assert response.status_code == 503 and response.headers["Retry-After"] == "1"
            assert len(requests) > 1
        nursery.cancel_scope.cancel()


async def test_an_unreachable_leader_gives_503_at_the_deadline_not_a_hang(tmp_path):
    nobody = f"127.0.0.1:{free_port()}"
    follower = Follower(nobody, "enqueue")
    async with api_app(
        str(tmp_path), service_wrapper=follower, request_timeout_s=SHORT_TIMEOUT_S
    ) as api:
        started_s = trio.current_time()
        response = await api.client.post(
            f"{QUEUES}/q/messages", json={"priority": 1, "content": "x"}
        )
        elapsed_s = trio.current_time() - started_s
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.headers["Content-Type"] == "application/problem+json"
        assert SHORT_TIMEOUT_S <= elapsed_s < SHORT_TIMEOUT_S + 2


async def test_the_leaders_answer_is_relayed_as_is(tmp_path):
    seen_headers = []

    async def busy_leader(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen_headers.append(dict(scope["headers"]))
        body = b'{"title":"Service Unavailable","status":503,"detail":"busy"}'
        headers = [(b"content-type", b"application/problem+json"), (b"retry-after", b"7")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    leader_http = f"127.0.0.1:{free_port()}"
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_app, busy_leader, leader_http, stop)
        follower = Follower(leader_http, "dequeue")
        async with api_app(str(tmp_path), service_wrapper=follower) as api:
            response = await api.client.get(f"{QUEUES}/q/messages?ack=true")
            assert response.status_code == 503 and response.headers["Retry-After"] == "7"
            assert response.headers["Content-Type"] == "application/problem+json"
            assert (await response.get_json())["detail"] == "busy"
        stop.set()
    (headers,) = seen_headers
    assert headers[b"x-doq-forwarded-hops"] == b"1"
    assert headers[b"x-doq-forwarded-by"] == b"node-0"


async def test_too_many_hops_are_refused_at_once(tmp_path):
    follower = Follower(f"127.0.0.1:{free_port()}", "list_queues")
    async with api_app(str(tmp_path), service_wrapper=follower) as api:
        response = await api.client.get(QUEUES, headers={"X-Doq-Forwarded-Hops": "3"})
        assert response.status_code == 503
        assert "relayed 3 times" in (await response.get_json())["detail"]


async def test_without_forwarding_a_follower_names_the_leader(tmp_path):
    follower = Follower("10.0.0.9:8000", "list_queues")
    async with api_app(str(tmp_path), service_wrapper=follower, forwarding=False) as api:
        response = await api.client.get(QUEUES)
        assert response.status_code == 503
        assert "10.0.0.9:8000" in (await response.get_json())["detail"]


async def test_a_request_that_finds_no_leader_waits_for_one_and_is_served(tmp_path):
    follower = Follower(None, "list_queues", times=1)
    async with api_app(str(tmp_path), service_wrapper=follower) as api:
        response = await api.client.get(QUEUES)
        assert response.status_code == 200
        assert follower.times == 0


def test_the_hop_count_is_read_only_from_a_few_ascii_digits():
    assert [hops_of(raw) for raw in (None, b"0", b"2", b"999")] == [0, 0, 2, 999]
    # "\xb2" is a superscript two in latin-1: str.isdigit() says yes, int() says no.
    assert [hops_of(raw) for raw in (b"\xb2", b"-1", b"1000", b"", b"2 ")] == [0, 0, 0, 0, 0]


def test_a_relayed_request_is_the_request_as_the_client_wrote_it():
    scope = {
        "method": "POST",
        "path": "/API/v1/queues/a b/messages",
        "raw_path": b"/API/v1/queues/a%20b/messages",
        "query_string": b"x=%2F",
        "headers": [
            (b"host", b"node-2:8002"),
            (b"content-type", b"application/json"),
            (b"content-type", b"text/plain"),
            (b"x-doq-forwarded-hops", b"1"),
            (b"cookie", b"not relayed"),
        ],
    }
    relayed = RelayRequest.of_scope(scope, b"{}")
    assert relayed.target == b"/API/v1/queues/a%20b/messages?x=%2F"
    assert relayed.headers == ((b"content-type", b"application/json"),)
    assert (relayed.client_host, relayed.hops, relayed.body) == (b"node-2:8002", 1, b"{}")
    forwarded = {**scope, "headers": [*scope["headers"], (b"x-forwarded-host", b"client:1")]}
    assert RelayRequest.of_scope(forwarded, b"").client_host == b"client:1"
    without_raw_path = {**scope, "raw_path": None, "query_string": b""}
    assert RelayRequest.of_scope(without_raw_path, b"").target == b"/API/v1/queues/a%20b/messages"


class HangingLeader:
    """Wraps every node's service: a follower relays ``create_queue`` to ``leader_http`` (a
    server that reads the request and never answers, as a paused or cut-off leader) instead of
    to the real leader."""

    def __init__(self, leader_http: str) -> None:
        self.leader_http = leader_http

    def __call__(self, service):
        return _RelaysTo(service, self.leader_http)


class _RelaysTo:
    def __init__(self, service, leader_http):
        self._service = service
        self._leader_http = leader_http

    def __getattr__(self, name):
        real = getattr(self._service, name)
        if name != "create_queue":
            return real

        async def relayed(*args, **kwargs):
            raft = self._service.raft
            if raft.is_leader:
                return await real(*args, **kwargs)
            raise NotLeaderError(raft.leader_id, self._leader_http)

        return relayed


async def hanging_server(task_status=trio.TASK_STATUS_IGNORED, *, received: trio.Event):
    """Accepts connections and reads requests; never answers."""

    async def handle(stream):
        async with stream:
            if await stream.receive_some(65536):
                received.set()
            await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    task_status.started(f"127.0.0.1:{port}")
    await trio.serve_listeners(handle, listeners)


async def test_a_relay_to_a_leader_that_was_replaced_ends_at_once(tmp_path):
    # docs/reliability.md, finding 3: the old leader holds the relayed write; the follower gives
    # it up when it learns of the new leader, not at the (here 60 s) request deadline.
    received = trio.Event()
    async with trio.open_nursery() as outer:
        hang_http = await outer.start(
            lambda task_status: hanging_server(task_status, received=received)
        )
        async with served_cluster(
            str(tmp_path), request_timeout_s=60, service_wrapper=HangingLeader(hang_http)
        ) as nodes:
            old_leader = leader_of(nodes)
            through, successor = followers_of(nodes)
            async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
                answers: list[httpx.Response] = []
                nursery.start_soon(create_queue_through, http, through.url, answers, 90)
                await received.wait()
                await old_leader.service.raft.transfer_leadership(successor.node_id)
            (answer,) = answers
            assert answer.status_code == 503, answer.text
            assert "the leader changed while the request was relayed" in answer.json()["detail"]
        outer.cancel_scope.cancel()
