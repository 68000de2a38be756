"""Batch and long-poll dequeue over HTTP: ``?count=N`` answers a list in the order single
dequeues would give; ``?wait=S`` holds the request on the leader until a message is ready (woken
by the enqueue's commit, not by polling) or the wait ends; a follower relays the waiting request
and the leader holds it."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from .support import api_app, followers_of, leader_of, served_cluster
from .test_messages import QUEUES, setup_queue

pytestmark = pytest.mark.usefixtures("fast_path")

M = f"{QUEUES}/q/messages"


async def until_waiting(waits, queue="q", count=1):
    """Until ``count`` requests wait on ``queue`` (event-driven waits: the test looks, with a
    deadline, at the holder's own registry)."""
    with trio.fail_after(10):
        while waits.waiting(queue) < count:
            await trio.sleep(0.005)


async def test_count_answers_a_list_in_single_dequeue_order_and_empty_is_200(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await setup_queue(client)
        messages = [{"priority": p, "content": str(p)} for p in (3, 1, 2, 1)]
        await client.post(f"{M}/batch", json={"messages": messages})
        response = await client.get(f"{M}?count=3")
        assert response.status_code == 200 and "X-Doq-Receipt" not in response.headers
        body = await response.get_json()
        assert body["$schema"] == "http://localhost/schemas/DequeuedBody.json"
        schema = await client.get("/schemas/DequeuedBody.json")  # documented, and served
        assert schema.status_code == 200
        items = (await schema.get_json())["properties"]["messages"]["items"]
        assert items == {"$ref": "/schemas/DeliveredBody.json"}
        delivered = await (await client.get("/schemas/DeliveredBody.json")).get_json()
        assert "receipt" in delivered["required"]
        assert body["status"] == "DEQUEUED"
        assert [m["content"] for m in body["messages"]] == ["1", "1", "2"]
        assert all(m["receipt"] == f"{m['id']}.1" for m in body["messages"])
        rest = await (await client.get(f"{M}?count=5&ack=true")).get_json()
        assert [m["content"] for m in rest["messages"]] == ["3"]
        empty = await client.get(f"{M}?count=5")
        assert empty.status_code == 200
        assert (await empty.get_json())["messages"] == []
        single = await client.get(M)  # without count: today's answer
        assert single.status_code == 400


async def test_bad_count_and_wait_are_422_naming_the_query(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        for query, location in (
            ("count=0", "query.count"),
            ("count=1001", "query.count"),
            ("count=x", "query.count"),
            ("wait=21", "query.wait"),
            ("wait=-1", "query.wait"),
            ("wait=nan", "query.wait"),
            ("count=2&wait=soon", "query.wait"),
        ):
            response = await api.client.get(f"{M}?{query}")
            assert response.status_code == 422, query
            (error,) = (await response.get_json())["errors"]
            assert error["location"] == location, query


async def test_a_waiting_dequeue_is_answered_by_the_enqueue_that_follows(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await setup_queue(client)
        waits = api.app.doq.waits
        answers = []
        async with trio.open_nursery() as nursery:

            async def wait_for_one(query):
                answers.append(await client.get(f"{M}?{query}"))

            nursery.start_soon(wait_for_one, "wait=10")
            nursery.start_soon(wait_for_one, "wait=10&count=1")  # each takes one of the two
            await until_waiting(waits, count=2)
            started = trio.current_time()
            await client.post(
                f"{M}/batch", json={"messages": [{"priority": 0, "content": "a"}] * 2}
            )
        assert trio.current_time() - started < 5  # woken by the commit, long before the wait ends
        single = next(a for a in answers if "X-Doq-Receipt" in a.headers)
        many = next(a for a in answers if a is not single)
        assert (await single.get_json())["content"] == "a"
        assert [m["content"] for m in (await many.get_json())["messages"]] == ["a"]
        assert waits.waiting("q") == 0


async def test_a_wait_that_ends_with_nothing_answers_as_without_waiting(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        started = trio.current_time()
        single = await api.client.get(f"{M}?wait=0.3")
        assert trio.current_time() - started >= 0.3
        assert single.status_code == 400
        assert (await single.get_json())["errors"] == [{"message": "Queue is empty: q"}]
        many = await api.client.get(f"{M}?wait=0.2&count=3")
        assert many.status_code == 200 and (await many.get_json())["messages"] == []


async def test_a_wait_longer_than_the_request_timeout_is_held_to_its_end(tmp_path):
    async with api_app(str(tmp_path), request_timeout_s=0.2) as api:
        await setup_queue(api.client)
        many = await api.client.get(f"{M}?wait=0.5&count=1")
        assert many.status_code == 200 and (await many.get_json())["messages"] == []


async def test_a_follower_relays_a_waiting_dequeue_and_the_leader_holds_it(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        follower, other = followers_of(nodes)
        async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
            body = {"name": "q", "type": "delayed", "settings": {}}
            await http.post(f"{follower.url}{QUEUES}", json=body)
            answers = []

            async def wait_through_the_follower():
                answers.append(await http.get(f"{follower.url}{M}?wait=15&count=10"))

            nursery.start_soon(wait_through_the_follower)
            leader_waits = leader.app.doq.waits
            await until_waiting(leader_waits)
            started = trio.current_time()
            await http.post(f"{other.url}{M}", json={"priority": 0, "content": "via other"})
        assert trio.current_time() - started < 10  # woken, not at the end of the wait
        (answer,) = answers
        assert answer.status_code == 200, answer.text
        assert [m["content"] for m in answer.json()["messages"]] == ["via other"]


async def test_a_leader_change_ends_a_held_wait_and_takes_nothing(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        follower, successor = followers_of(nodes)
        async with httpx.AsyncClient(timeout=30) as http:
            body = {"name": "q", "type": "delayed", "settings": {}}
            await http.post(f"{follower.url}{QUEUES}", json=body)
            answers = []
            async with trio.open_nursery() as nursery:

                async def wait_through_the_follower():
                    answers.append(await http.get(f"{follower.url}{M}?wait=15&count=10"))

                nursery.start_soon(wait_through_the_follower)
                await until_waiting(leader.app.doq.waits)
                started = trio.current_time()
                await leader.service.raft.transfer_leadership(successor.node_id)
            assert trio.current_time() - started < 10  # ended by the change, not the wait
            (ended,) = answers
            assert ended.status_code == 503, ended.text
            assert "nothing was dequeued" in ended.json()["detail"]
            assert "Retry-After" in ended.headers
            await http.post(f"{follower.url}{M}", json={"priority": 0, "content": "once"})
            got = await http.get(f"{follower.url}{M}?count=10")
            assert [m["content"] for m in got.json()["messages"]] == ["once"]
            info = await http.get(f"{follower.url}{QUEUES}/q")
            assert info.json()["dequeue_rps"] >= 0 and info.json()["unacked"] == 1


async def test_a_wait_is_woken_when_a_delayed_message_comes_due(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await setup_queue(client)
        due_s = int(time.time()) + 2  # the next whole second but one: 1 to 2 s from now
        await client.post(M, json={"priority": due_s, "content": "later"})
        started = trio.current_time()
        answer = await client.get(f"{M}?wait=10&count=1")
        elapsed_s = trio.current_time() - started
        assert [m["content"] for m in (await answer.get_json())["messages"]] == ["later"]
        assert elapsed_s < 4  # at its due time, not at the end of the wait
        assert time.time() >= due_s


async def test_a_wait_is_woken_when_an_ack_deadline_passes(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        body = {"name": "q", "type": "delayed", "settings": {"ack_timeout": 1}}
        await client.post(QUEUES, json=body)
        await client.post(M, json={"priority": 0, "content": "job"})
        first = await (await client.get(f"{M}?count=1")).get_json()
        started = trio.current_time()
        again = await (await client.get(f"{M}?wait=10&count=1")).get_json()
        elapsed_s = trio.current_time() - started
        (message,) = again["messages"]
        assert message["id"] == first["messages"][0]["id"]
        assert message["receipt"].endswith(".2")  # its second delivery
        assert 0.5 < elapsed_s < 3
