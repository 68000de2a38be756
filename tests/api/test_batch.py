"""Batch endpoints through the real app on a real one-node service: batch enqueue (and, below,
batch ack, nack and touch)."""

from __future__ import annotations

from .support import api_app
from .test_messages import QUEUES, setup_queue

BATCH = f"{QUEUES}/q/messages/batch"


def item(**fields):
    return {"priority": 1, "content": "x", **fields}


async def test_a_batch_enqueue_answers_one_result_per_item_in_order(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await api.client.post(f"{QUEUES}/q/messages", json=item(id="42", content="kept"))
        messages = [item(content="a"), item(id="42", content="new"), item(priority=0, content="c")]
        response = await api.client.post(BATCH, json={"messages": messages})
        assert response.status_code == 200
        body = await response.get_json()
        assert body["$schema"] == "http://localhost/schemas/BatchEnqueuedBody.json"
        first, duplicate, third = body["results"]
        assert (
            first["status"] == "ENQUEUED"
            and first["id"].isdigit()
            and set(first)
            == {
                "status",
                "id",
            }
        )
        assert duplicate == {
            "status": "DUPLICATE",
            "id": "42",
            "group": "default",
            "priority": 1,
            "content": "kept",
        }
        assert third["status"] == "ENQUEUED"
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["total"] == 3
        got = await (await api.client.get(f"{QUEUES}/q/messages?ack=true")).get_json()
        assert got["content"] == "c"  # priority 0 first


async def test_one_invalid_item_refuses_the_whole_batch_naming_its_index(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        cases = [
            ({"messages": [item()] * 17 + [item(priority=-1)]}, "body.messages[17].priority"),
            ({"messages": [item(), item(id="18446744073709551616")]}, "body.messages[1].id"),
            ({"messages": [item(), {"priority": 1}]}, "body.messages[1]"),
            ({"messages": [item(extra=1)]}, "body.messages[0].extra"),
            ({"messages": []}, "body.messages"),
            ({"messages": [item()] * 1001}, "body.messages"),
            ({}, "body"),
        ]
        for request, location in cases:
            response = await api.client.post(BATCH, json=request)
            assert response.status_code == 422, request
            assert response.headers["Content-Type"] == "application/problem+json"
            (error,) = (await response.get_json())["errors"]
            assert error["location"] == location, (location, error)
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["total"] == 0


async def test_a_batch_to_an_unknown_queue_is_404_and_a_body_too_large_is_413(tmp_path):
    async with api_app(str(tmp_path), max_body_bytes=10_000) as api:
        await setup_queue(api.client)
        missing = await api.client.post(
            f"{QUEUES}/nope/messages/batch", json={"messages": [item()]}
        )
        assert missing.status_code == 404
        large = await api.client.post(BATCH, json={"messages": [item(content="x" * 20_000)]})
        assert large.status_code == 413
        assert large.headers["Content-Type"] == "application/problem+json"
        empty = await api.client.post(BATCH, data=b"")
        assert empty.status_code == 400


async def dequeue_ids(client, count):
    ids = []
    for _ in range(count):
        body = await (await client.get(f"{QUEUES}/q/messages")).get_json()
        ids.append(body["id"])
    return ids


async def test_batch_ack_nack_touch_answer_one_result_per_id(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        await api.client.post(BATCH, json={"messages": [item(content=str(n)) for n in range(4)]})
        a, b, c, d = await dequeue_ids(api.client, 4)
        touched = await api.client.post(f"{QUEUES}/q/messages/touch", json={"ids": [a, {"id": b}]})
        assert [r["status"] for r in (await touched.get_json())["results"]] == ["TOUCHED"] * 2
        acked = await api.client.post(f"{QUEUES}/q/messages/ack", json={"ids": [a, "999", a]})
        body = await acked.get_json()
        assert body["$schema"] == "http://localhost/schemas/BatchResultsBody.json"
        for name in ("BatchResultsBody", "BatchEnqueuedBody", "BatchEnqueueRequest"):
            assert (await api.client.get(f"/schemas/{name}.json")).status_code == 200, name
        first, unknown, again = body["results"]
        assert first == {"status": "ACKNOWLEDGED", "id": a}
        assert unknown["status"] == "FAILED" and unknown["error"]["status"] == 404
        assert again["status"] == "FAILED" and again["error"]["status"] == 404
        nacked = await api.client.post(
            f"{QUEUES}/q/messages/nack",
            json={"messages": [{"id": b, "priority": 9, "metadata": {"k": "v"}}, {"id": c}]},
        )
        assert (await nacked.get_json())["results"] == [
            {"status": "UNACKNOWLEDGED", "id": b, "priority": 9, "metadata": {"k": "v"}},
            {"status": "UNACKNOWLEDGED", "id": c, "priority": 1},
        ]
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert (info["ready"], info["unacked"], info["total"]) == (2, 1, 3)
        assert d  # still in flight


async def test_batch_in_flight_validation_and_unknown_queue(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await setup_queue(api.client)
        cases = [
            (f"{QUEUES}/q/messages/ack", {"ids": ["1", "x"]}, "body.ids[1]"),
            (f"{QUEUES}/q/messages/ack", {"ids": ["1", "18446744073709551616"]}, "body.ids[1]"),
            (f"{QUEUES}/q/messages/touch", {"ids": [{"id": "1", "x": 1}]}, "body.ids[0].x"),
            (f"{QUEUES}/q/messages/touch", {"ids": []}, "body.ids"),
            (
                f"{QUEUES}/q/messages/nack",
                {"messages": [{"id": "1", "priority": -1}]},
                "body.messages[0].priority",
            ),
        ]
        for path, request, location in cases:
            response = await api.client.post(path, json=request)
            assert response.status_code == 422, request
            (error,) = (await response.get_json())["errors"]
            assert error["location"] == location, (request, error)
        missing = await api.client.post(f"{QUEUES}/nope/messages/ack", json={"ids": ["1"]})
        assert missing.status_code == 404
