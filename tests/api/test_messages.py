"""The message endpoints and /API/v1/ids through the real app on a real one-node service."""

from __future__ import annotations

import pytest

from .support import api_app

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"
U64_MAX = (1 << 64) - 1


async def setup_queue(client, name="q", type_="delayed"):
    response = await client.post(QUEUES, json={"name": name, "type": type_, "settings": {}})
    assert response.status_code == 200


async def enqueue(client, queue="q", **message):
    message.setdefault("content", "x")
    message.setdefault("priority", 0)
    return await client.post(f"{QUEUES}/{queue}/messages", json=message)


async def test_enqueue_answers_the_stored_message_with_a_string_id(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        response = await enqueue(api.client, priority=7, content="hello", metadata={"k": "v"})
        assert response.status_code == 200
        body = await response.get_json()
        assert body["$schema"] == "http://localhost/schemas/MessageBody.json"
        assert body["status"] == "ENQUEUED" and isinstance(body["id"], str) and body["id"].isdigit()
        assert (body["group"], body["priority"], body["content"], body["metadata"]) == (
            "default",
            7,
            "hello",
            {"k": "v"},
        )


async def test_enqueue_with_a_client_id_twice_keeps_one_copy(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        first = await (await enqueue(api.client, id="42", content="one")).get_json()
        second = await (await enqueue(api.client, id="42", content="two")).get_json()
        assert first["id"] == second["id"] == "42"
        assert second["content"] == "one"
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["total"] == 1


async def test_enqueue_validation(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        cases = [
            ({"priority": -1, "content": "x"}, "body.priority", "expected int >= 0"),
            ({"priority": "1", "content": "x"}, "body.priority", "expected int, got str"),
            ({"priority": 1}, "body", "expected required property content to be present"),
            ({"priority": 1, "content": "x", "id": "abc"}, "body.id", None),
            ({"priority": 1, "content": "x", "id": str(U64_MAX + 1)}, "body.id", None),
            ({"priority": 1, "content": "x", "metadata": {"a": 1}}, "body.metadata", None),
            ({"priority": 1, "content": "x", "extra": True}, "body.extra", "unexpected property"),
        ]
        for body, location, message in cases:
            response = await api.client.post(f"{QUEUES}/q/messages", json=body)
            assert response.status_code == 422, body
            (error,) = (await response.get_json())["errors"]
            assert error["location"] == location, (body, error)
            if message:
                assert error["message"] == message


async def test_missing_and_malformed_bodies_are_400(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        empty = await api.client.post(f"{QUEUES}/q/messages", data=b"")
        assert empty.status_code == 400
        assert (await empty.get_json())["detail"] == "request body is required"
        broken = await api.client.post(f"{QUEUES}/q/messages", data=b'{"priority": 1,')
        assert broken.status_code == 400
        assert broken.headers["Content-Type"] == "application/problem+json"


async def test_enqueue_to_an_unknown_queue_is_404(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await enqueue(api.client, queue="missing")
        assert response.status_code == 404


async def test_dequeue_delivers_smallest_priority_and_an_empty_queue_is_400(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await enqueue(api.client, priority=5, content="later")
        await enqueue(api.client, priority=1, content="first")
        response = await api.client.get(f"{QUEUES}/q/messages?ack=true")
        body = await response.get_json()
        assert (body["status"], body["content"]) == ("DEQUEUED", "first")
        await api.client.get(f"{QUEUES}/q/messages", query_string={"ack": "1"})
        empty = await api.client.get(f"{QUEUES}/q/messages?ack=true")
        assert empty.status_code == 400
        problem = await empty.get_json()
        assert problem["errors"] == [{"message": "Queue is empty: q"}]
        missing = await api.client.get(f"{QUEUES}/missing/messages")
        assert missing.status_code == 404


async def test_ack_query_must_be_a_boolean(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        response = await api.client.get(f"{QUEUES}/q/messages?ack=perhaps")
        assert response.status_code == 422
        (error,) = (await response.get_json())["errors"]
        assert (error["location"], error["value"]) == ("query.ack", "perhaps")


async def test_in_flight_message_ack_nack_touch(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await enqueue(api.client, priority=3)
        message = await (await api.client.get(f"{QUEUES}/q/messages")).get_json()
        path = f"{QUEUES}/q/messages/{message['id']}"
        touched = await api.client.post(f"{path}/touch")
        assert await touched.get_json() == {
            "$schema": "http://localhost/schemas/MessageIdBody.json",
            "status": "TOUCHED",
            "id": message["id"],
        }
        nacked = await api.client.post(f"{path}/nack", json={"priority": 9, "metadata": {"r": "1"}})
        body = await nacked.get_json()
        assert (body["status"], body["id"], body["priority"], body["metadata"]) == (
            "UNACKNOWLEDGED",
            message["id"],
            9,
            {"r": "1"},
        )
        assert (await api.client.post(f"{path}/ack")).status_code == 404  # not in flight now
        again = await (await api.client.get(f"{QUEUES}/q/messages")).get_json()
        assert (again["id"], again["priority"]) == (message["id"], 9)
        acked = await api.client.post(f"{path}/ack")
        assert (await acked.get_json())["status"] == "ACKNOWLEDGED"
        assert (await api.client.post(f"{path}/touch")).status_code == 404


async def test_nack_with_priority_zero_keeps_the_old_priority(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await enqueue(api.client, priority=4)
        message = await (await api.client.get(f"{QUEUES}/q/messages")).get_json()
        nacked = await api.client.post(
            f"{QUEUES}/q/messages/{message['id']}/nack", json={"priority": 0}
        )
        assert (await nacked.get_json())["priority"] == 4


async def test_get_update_priority_and_delete_a_message(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        message = await (await enqueue(api.client, priority=3, content="c")).get_json()
        path = f"{QUEUES}/q/messages/{message['id']}"
        got = await (await api.client.get(path)).get_json()
        assert (got["status"], got["content"], got["priority"]) == ("GOT", "c", 3)
        updated = await api.client.put(f"{path}/priority", json={"priority": 11})
        assert await updated.get_json() == {
            "$schema": "http://localhost/schemas/PriorityUpdatedBody.json",
            "status": "UPDATED",
            "id": message["id"],
            "priority": 11,
        }
        assert (await (await api.client.get(path)).get_json())["priority"] == 11
        deleted = await api.client.delete(path)
        assert deleted.status_code == 204 and await deleted.get_data() == b""
        assert (await api.client.get(path)).status_code == 404
        assert (await api.client.delete(path)).status_code == 404
        assert (await api.client.put(f"{path}/priority", json={"priority": 1})).status_code == 404


async def test_message_ids_in_paths_must_be_unsigned_64_bit_integers(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        for bad in ("abc", "-1", str(U64_MAX + 1)):
            response = await api.client.get(f"{QUEUES}/q/messages/{bad}")
            assert response.status_code == 404, bad
            assert response.headers["Content-Type"] == "application/problem+json"


async def test_generated_ids_are_distinct_increasing_strings_and_number_is_bounded(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.post("/API/v1/ids", json={"number": 5})
        ids = [int(i) for i in (await response.get_json())["ids"]]
        assert len(ids) == 5 and ids == sorted(set(ids))
        for number in (0, 1001):
            bad = await api.client.post("/API/v1/ids", json={"number": number})
            assert bad.status_code == 422


async def test_fair_queue_keeps_the_group_and_delayed_queue_stores_default(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client, "f", "fair")
        body = await (await enqueue(api.client, queue="f", group="tenant.a")).get_json()
        assert body["group"] == "tenant.a"
        await setup_queue(api.client, "d", "delayed")
        empty_group = await (await enqueue(api.client, queue="d", group="")).get_json()
        assert empty_group["group"] == "default"


async def test_head_never_dequeues(tmp_path):
    """Werkzeug answers HEAD with every GET route; on dequeue that would take a message."""
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await enqueue(api.client, priority=1, content="keep me")
        head = await api.client.head(f"{QUEUES}/q/messages?ack=true")
        assert head.status_code == 405
        assert head.headers["Allow"] == "GET"
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["ready"] == 1
        got = await api.client.get(f"{QUEUES}/q/messages?ack=true")
        assert (await got.get_json())["content"] == "keep me"
