"""doq.api.relay: the keep-alive HTTP/1.1 client that relays requests to the leader, against a real
Hypercorn server and against raw servers that misbehave on purpose. What matters most is what it
says about a failure: not sent (may be sent again) or sent (the server may have acted)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from doq.api.relay import ConnectFailed, ExchangeFailed, RelayClient

from ..support import free_port
from .support import serve_app

DEADLINE_S = 10.0  # generous: these exchanges take milliseconds
SHORT_DEADLINE_S = 0.3  # for the cases where the deadline is what is tested


async def echo_app(scope, receive, send):
    """Answers with what it received; ``/chunked`` answers without Content-Length (so
    Hypercorn sends it chunked), ``/close`` asks the client to close the connection."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    seen = {
        "method": scope["method"],
        "target": scope["raw_path"].decode() + "?" + scope["query_string"].decode(),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "body": body.decode(),
        "client_port": scope["client"][1],
    }
    answer = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json")]
    if scope["path"] == "/chunked":
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        for part in (answer[:10], answer[10:]):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    headers.append((b"content-length", str(len(answer)).encode()))
    if scope["path"] == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def echo_server(nursery):
    address = f"127.0.0.1:{free_port()}"
    stop = trio.Event()
    await nursery.start(serve_app, echo_app, address, stop)
    yield address
    stop.set()


def headers_for(address: str, body: bytes = b"") -> list[tuple[bytes, bytes]]:
    return [(b"host", address.encode()), (b"content-length", str(len(body)).encode())]


async def get(client: RelayClient, address: str, path: bytes = b"/x", body: bytes = b""):
    deadline = trio.current_time() + DEADLINE_S
    method = b"POST" if body else b"GET"
    headers = headers_for(address, body)
    answer = await client.request(address, method, path, headers, body, deadline=deadline)
    return answer, json.loads(answer.body) if answer.body.startswith(b"{") else None


async def test_a_request_arrives_as_sent_and_the_answer_comes_back_whole(echo_server):
    client = RelayClient()
    body = b'{"priority": 1}'
    headers = [*headers_for(echo_server, body), (b"x-doq-forwarded-hops", b"1")]
    answer = await client.request(
        echo_server,
        b"POST",
        b"/API/v1/queues/a%20b/messages?ack=true",
        headers,
        body,
        deadline=trio.current_time() + DEADLINE_S,
    )
    seen = json.loads(answer.body)
    assert answer.status == 200 and answer.header(b"content-type") == b"application/json"
    assert seen["method"] == "POST" and seen["body"] == body.decode()
    assert seen["target"] == "/API/v1/queues/a%20b/messages?ack=true"
    assert seen["headers"]["x-doq-forwarded-hops"] == "1"
    await client.aclose()


async def test_one_connection_is_kept_alive_across_requests(echo_server):
    client = RelayClient()
    ports = {(await get(client, echo_server))[1]["client_port"] for _ in range(5)}
    assert len(ports) == 1 and client.idle_connections(echo_server) == 1
    await client.aclose()
    assert client.idle_connections(echo_server) == 0


async def test_a_chunked_answer_is_read_whole(echo_server):
    client = RelayClient()
    answer, seen = await get(client, echo_server, b"/chunked", b"payload")
    assert answer.status == 201 and answer.header(b"content-length") is None
    assert seen["body"] == "payload"
    again, _ = await get(client, echo_server)  # the connection is still usable afterwards
    assert again.status == 200 and client.idle_connections(echo_server) == 1
    await client.aclose()


async def test_an_answer_that_closes_the_connection_is_not_reused(echo_server):
    client = RelayClient()
    _, first = await get(client, echo_server, b"/close")
    assert client.idle_connections(echo_server) == 0
    _, second = await get(client, echo_server)
    assert first["client_port"] != second["client_port"]
    await client.aclose()


async def test_idle_connections_past_their_expiry_are_not_used(echo_server):
    now_s = [100.0]
    client = RelayClient(idle_expiry_s=2.0, clock_s=lambda: now_s[0])
    _, first = await get(client, echo_server)
    now_s[0] += 1.0
    _, second = await get(client, echo_server)
    now_s[0] += 2.5
    _, third = await get(client, echo_server)
    assert first["client_port"] == second["client_port"] != third["client_port"]
    await client.aclose()


async def test_nothing_listening_is_not_sent():
    client = RelayClient()
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConnectFailed):
        await get(client, nobody)
    with pytest.raises(ConnectFailed):
        await get(client, "no-port-here")


async def one_shot_server(handle, *, task_status=trio.TASK_STATUS_IGNORED):
    """A raw TCP server on 127.0.0.1 that runs ``handle(stream)`` per connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(f"127.0.0.1:{listeners[0].socket.getsockname()[1]}")
    await trio.serve_listeners(handle, listeners)


async def test_a_connection_cut_after_the_request_was_written_is_an_exchange_failure(nursery):
    received = []

    async def cut(stream):
        async with stream:
            received.append(await stream.receive_some(65536))

    address = await nursery.start(one_shot_server, cut)
    client = RelayClient()
    with pytest.raises(ExchangeFailed):
        await get(client, address)
    assert len(received) == 1 and received[0].startswith(b"GET /x HTTP/1.1\r\n")
    assert client.idle_connections(address) == 0


async def test_an_answer_that_is_not_http_is_an_exchange_failure(nursery):
    async def garbage(stream):
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"SMTP ready\r\n\r\n")

    address = await nursery.start(one_shot_server, garbage)
    with pytest.raises(ExchangeFailed):
        await get(RelayClient(), address)


async def test_an_answer_above_the_body_limit_is_an_exchange_failure(echo_server):
    client = RelayClient(answer_body_bytes_max=64)
    with pytest.raises(ExchangeFailed, match="larger than 64 bytes"):
        await get(client, echo_server, b"/x", b"y" * 100)
    assert client.idle_connections(echo_server) == 0


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_written_into(nursery):
    """The server answers one request per connection with keep-alive, then closes it: the next
    request must go on a new connection, not fail on the dead one."""
    closed_send, closed = trio.open_memory_channel[None](2)

    async def one_then_close(stream):
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await closed_send.send(None)

    address = await nursery.start(one_shot_server, one_then_close)
    client = RelayClient()
    for _ in range(3):
        answer, _ = await get(client, address)  # each on a new connection, without an error
        assert answer.body == b"ok"
        await closed.receive()  # the server has closed that connection: the next request knows
    await client.aclose()


async def test_no_answer_before_the_deadline_is_an_exchange_failure_and_a_full_pool_is_not_sent(
    nursery,
):
    async def silent(stream):
        async with stream:
            await trio.sleep_forever()

    address = await nursery.start(one_shot_server, silent)
    client = RelayClient(connections_per_address_max=1)
    outcomes = []

    async def attempt(delay_s: float) -> None:
        deadline = trio.current_time() + SHORT_DEADLINE_S + delay_s
        headers = headers_for(address)
        try:
            await client.request(address, b"GET", b"/x", headers, b"", deadline=deadline)
        except (ConnectFailed, ExchangeFailed) as exc:
            outcomes.append(type(exc))

    async with trio.open_nursery() as attempts:
        attempts.start_soon(attempt, 0.2)  # holds the only slot, waiting for an answer
        await trio.testing.wait_all_tasks_blocked()
        attempts.start_soon(attempt, 0.0)  # finds no free slot before its deadline
    assert outcomes == [ConnectFailed, ExchangeFailed]


async def test_a_closed_client_sends_nothing(echo_server):
    client = RelayClient()
    await client.aclose()
    with pytest.raises(ConnectFailed):
        await get(client, echo_server)
