"""The node as the launcher runs it (DoqNode, in-process, on 127.0.0.1): shutdown answers what is
in flight and is not held up by idle connections; a restarted member does not join again."""

from __future__ import annotations

import os

import attrs
import httpx
import trio

from doq.config import Settings
from doq.server import DoqNode

from ..support import free_port


def _settings(root: str, node_id: str, **overrides: object) -> Settings:
    base = Settings(
        storage__data_dir=root,
        cluster__node_id=node_id,
        http__host="127.0.0.1",
        http__port=free_port(),
        raft__address=f"127.0.0.1:{free_port()}",
        raft__tick_ms=10,
        logging__level="warning",
    )
    return attrs.evolve(base, **overrides)  # type: ignore[arg-type]


async def _ready(client: httpx.AsyncClient, settings: Settings) -> None:
    url = f"http://127.0.0.1:{settings.http__port}/readyz"
    with trio.fail_after(20):
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.02)


async def test_a_request_in_flight_at_shutdown_is_answered(tmp_path):
    # A node told to join an address where nobody listens never learns a leader, so a request
    # to it waits for one until its deadline: it is in flight when the node is stopped.
    settings = _settings(
        str(tmp_path),
        "lonely",
        cluster__join_addr=f"127.0.0.1:{free_port()}",
        http__request_timeout=1.5,
    )
    node = DoqNode(settings)
    answers: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)

        async def request() -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(f"http://127.0.0.1:{settings.http__port}/API/v1/queues")
                answers.append(r.status_code)

        nursery.start_soon(request)
        with trio.fail_after(5):
            while node.requests_in_flight == 0:  # until it arrives and waits for a leader
                await trio.sleep(0.005)
        node.stop()
    assert answers == [503]


async def test_idle_keep_alive_connections_do_not_hold_up_shutdown(tmp_path):
    settings = _settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    async with httpx.AsyncClient() as client:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            await _ready(client, settings)  # leaves a keep-alive connection open
            stopped_at = trio.current_time()
            node.stop()
        # Hypercorn alone would have waited its whole 5 s graceful timeout.
        assert trio.current_time() - stopped_at < 2


async def test_a_restarted_member_does_not_join_again(tmp_path):
    root = str(tmp_path)
    first = _settings(root, "a")
    second = _settings(root, "b", cluster__join_addr=f"127.0.0.1:{first.http__port}")
    async with httpx.AsyncClient() as client, trio.open_nursery() as outer:
        node_a = DoqNode(first)
        await outer.start(node_a.run)
        await _ready(client, first)
        node_b = DoqNode(second)
        async with trio.open_nursery() as inner:
            await inner.start(node_b.run)
            with trio.fail_after(20):
                while len([s for s in node_a.service.servers() if s.suffrage == "Voter"]) < 2:
                    await trio.sleep(0.02)
            node_b.stop()
        # Restart b pointing its join address at nothing: as a member it must not need it.
        restarted = DoqNode(attrs.evolve(second, cluster__join_addr=f"127.0.0.1:{free_port()}"))
        async with trio.open_nursery() as inner:
            await inner.start(restarted.run)
            await _ready(client, second)
            assert restarted.raft.leader_id == "a"
            assert os.path.isdir(os.path.join(root, "b", "state"))
            restarted.stop()
        node_a.stop()


async def test_counts_and_metrics_show_an_expired_message_ready_with_no_consumer(tmp_path):
    """The node's expirer (doq/expiry.py): no consumer comes after the deadline, yet the queue's
    counts and /metrics show the message ready again within about a second."""
    settings = _settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    base = f"http://127.0.0.1:{settings.http__port}"
    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await _ready(client, settings)
        queue = {"name": "q", "type": "delayed", "settings": {"ack_timeout": 1}}
        await client.post(f"{base}/API/v1/queues", json=queue)
        await client.post(f"{base}/API/v1/queues/q/messages", json={"priority": 0, "content": "x"})
        assert (await client.get(f"{base}/API/v1/queues/q/messages")).status_code == 200
        taken_at = trio.current_time()
        with trio.fail_after(5):
            while (await client.get(f"{base}/API/v1/queues/q")).json()["ready"] != 1:
                await trio.sleep(0.02)
        assert trio.current_time() - taken_at < 2.5
        info = (await client.get(f"{base}/API/v1/queues/q")).json()
        assert (info["ready"], info["unacked"]) == (1, 0)
        metrics = (await client.get(f"{base}/metrics")).text
        assert 'doq_queues_unacked_messages{queue_name="q"} 0.0' in metrics
        assert 'doq_queues_ready_messages{queue_name="q"} 1.0' in metrics
        node.stop()


async def test_a_waiting_dequeue_ends_at_shutdown_with_nothing_taken(tmp_path):
    settings = _settings(str(tmp_path), "solo")
    node = DoqNode(settings)
    base = f"http://127.0.0.1:{settings.http__port}"
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await _ready(client, settings)
        await client.post(f"{base}/API/v1/queues", json={"name": "q", "type": "delayed"})

        async def wait() -> None:
            answers.append(await client.get(f"{base}/API/v1/queues/q/messages?wait=20"))

        nursery.start_soon(wait)
        waits = node._app.app.doq.waits  # the API's registry of waiting dequeues
        with trio.fail_after(5):
            while waits.waiting("q") == 0:  # until the request is held (not merely arrived)
                await trio.sleep(0.005)
        stopped_at = trio.current_time()
        node.stop()
    assert trio.current_time() - stopped_at < 3  # not held for the wait, nor the 5 s grace
    (answer,) = answers
    assert answer.status_code == 503 and "nothing was dequeued" in answer.json()["detail"]
