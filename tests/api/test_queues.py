"""The queue endpoints of API.md through the real app on a real one-node service."""

from __future__ import annotations

from .support import api_app

QUEUES = "/API/v1/queues"


async def create(client, name="q", type_="delayed", settings=None):
    body = {"name": name, "type": type_, "settings": settings or {}}
    return await client.post(QUEUES, json=body)


async def test_create_reports_the_resolved_settings_and_a_schema_url(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await create(api.client, "jobs", "delayed", {"ack_timeout": 30})
        assert response.status_code == 200
        body = await response.get_json()
        assert body == {
            "$schema": "http://localhost/schemas/QueueCreatedBody.json",
            "status": "CREATED",
            "name": "jobs",
            "type": "delayed",
            "settings": {"max_unacked": 0, "ack_timeout": 30},
        }


async def test_fair_queue_with_empty_settings_is_round_robin_reported_in_upper_case(tmp_path):
    async with api_app(str(tmp_path)) as api:
        body = await (await create(api.client, "f", "fair")).get_json()
        assert body["settings"] == {
            "strategy": "ROUND_ROBIN",
            "max_unacked": 0,
            "ack_timeout": 1800,
        }
        weighted = await create(api.client, "w", "fair", {"strategy": "weighted", "max_unacked": 2})
        assert (await weighted.get_json())["settings"]["strategy"] == "WEIGHTED"


async def test_creating_an_existing_queue_of_the_same_type_answers_200_and_changes_nothing(
    tmp_path,
):
    async with api_app(str(tmp_path)) as api:
        await create(api.client, "q", "delayed", {"ack_timeout": 30})
        again = await create(api.client, "q", "delayed", {"ack_timeout": 99})
        assert again.status_code == 200
        assert (await again.get_json())["settings"]["ack_timeout"] == 30


async def test_creating_an_existing_queue_with_another_type_is_a_409_problem(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await create(api.client, "q", "delayed")
        response = await create(api.client, "q", "fair")
        assert response.status_code == 409
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = await response.get_json()
        assert problem["title"] == "Conflict" and problem["status"] == 409
        assert "delayed" in problem["detail"]


async def test_create_validation_failures_are_422_with_location_and_value(tmp_path):
    async with api_app(str(tmp_path)) as api:
        cases = [
            ({"name": "q", "type": "lifo", "settings": {}}, "body.type", "lifo"),
            ({"name": "x" * 1025, "type": "fair", "settings": {}}, "body.name", "x" * 1025),
            ({"name": "q", "type": "fair", "settings": {"max_unacked": -1}}, None, -1),
            ({"name": "q", "type": "fair", "settings": {"ack_timeout": 0}}, None, 0),
            ({"name": "q", "type": "fair", "settings": {"strategy": "random"}}, None, "random"),
        ]
        for body, location, value in cases:
            response = await api.client.post(QUEUES, json=body)
            assert response.status_code == 422, body
            problem = await response.get_json()
            assert problem["detail"] == "validation failed"
            (error,) = problem["errors"]
            assert error["value"] == value
            if location:
                assert error["location"] == location
            else:
                assert error["location"].startswith("body.settings.")


async def test_settings_may_be_left_out_and_unknown_fields_are_unexpected(tmp_path):
    async with api_app(str(tmp_path)) as api:
        # The Go server's README creates queues without settings: the defaults apply.
        created = await api.client.post(QUEUES, json={"name": "q", "type": "fair"})
        assert created.status_code == 200
        body = await created.get_json()
        assert body["settings"]["strategy"] == "ROUND_ROBIN"
        assert body["settings"]["ack_timeout"] == 1800
        missing_type = await api.client.post(QUEUES, json={"name": "q2"})
        (error,) = (await missing_type.get_json())["errors"]
        assert error["message"] == "expected required property type to be present"
        unknown = await api.client.post(
            QUEUES, json={"name": "q", "type": "fair", "settings": {"colour": "red"}}
        )
        (error,) = (await unknown.get_json())["errors"]
        assert error == {
            "message": "unexpected property",
            "location": "body.settings.colour",
            "value": "red",
        }


async def test_update_changes_settings_and_refuses_a_strategy_change(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await create(api.client, "f", "fair")
        response = await api.client.put(
            f"{QUEUES}/f", json={"settings": {"max_unacked": 5, "ack_timeout": 60}}
        )
        assert response.status_code == 200
        body = await response.get_json()
        assert body["status"] == "UPDATED" and body["name"] == "f"
        assert body["settings"] == {"strategy": "ROUND_ROBIN", "max_unacked": 5, "ack_timeout": 60}
        conflict = await api.client.put(f"{QUEUES}/f", json={"settings": {"strategy": "weighted"}})
        assert conflict.status_code == 409


async def test_update_or_delete_of_an_unknown_queue_is_404(tmp_path):
    async with api_app(str(tmp_path)) as api:
        update = await api.client.put(f"{QUEUES}/nope", json={"settings": {}})
        assert update.status_code == 404
        delete = await api.client.delete(f"{QUEUES}/nope")
        assert delete.status_code == 404
        assert (await delete.get_json())["detail"] == "queue not found: nope"


async def test_delete_removes_the_queue_and_its_messages(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await create(api.client, "q")
        await api.client.post(f"{QUEUES}/q/messages", json={"priority": 1, "content": "x"})
        response = await api.client.delete(f"{QUEUES}/q")
        assert response.status_code == 200
        assert (await response.get_json())["status"] == "DELETED"
        assert (await api.client.get(f"{QUEUES}/q")).status_code == 404
        await create(api.client, "q")
        assert (await (await api.client.get(f"{QUEUES}/q")).get_json())["total"] == 0


async def test_list_is_sorted_by_name_and_info_counts_ready_unacked_total(tmp_path):
    async with api_app(str(tmp_path)) as api:
        for name in ("b", "a", "c"):
            await create(api.client, name)
        for priority in (1, 2, 3):
            await api.client.post(
                f"{QUEUES}/b/messages", json={"priority": priority, "content": "x"}
            )
        await api.client.get(f"{QUEUES}/b/messages")
        listing = await (await api.client.get(QUEUES)).get_json()
        assert [q["name"] for q in listing["queues"]] == ["a", "b", "c"]
        info = await (await api.client.get(f"{QUEUES}/b")).get_json()
        assert (info["ready"], info["unacked"], info["total"]) == (2, 1, 3)
        assert set(info) >= {"enqueue_rps", "dequeue_rps", "ack_rps", "nack_rps", "settings"}
        assert info["$schema"].endswith("/schemas/QueueInfoBody.json")


async def test_a_queue_name_longer_than_the_limit_in_a_path_is_422(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.get(f"{QUEUES}/{'n' * 1025}")
        assert response.status_code == 422
        assert (await response.get_json())["errors"][0]["location"] == "path.name"
