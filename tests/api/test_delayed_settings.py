"""Fair-only settings on a delayed queue answer 409, as the Go server does (issue 11, §5): they
used to be accepted and silently not applied, so that two dequeues with ``max_unacked: 1``
both succeeded."""

from __future__ import annotations

import pytest

from .support import api_app

QUEUES = "/API/v1/queues"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_unacked": 1}, "max_unacked"),
        ({"strategy": "round_robin"}, "strategy"),
        ({"strategy": "weighted", "max_unacked": 3}, "strategy and max_unacked"),
    ],
)
async def test_creating_a_delayed_queue_with_fair_only_settings_is_409(tmp_path, settings, named):
    async with api_app(str(tmp_path)) as api:
        body = {"name": "d", "type": "delayed", "settings": settings}
        response = await api.client.post(QUEUES, json=body)
        assert response.status_code == 409
        assert named in (await response.get_json())["detail"]
        assert (await api.client.get(f"{QUEUES}/d")).status_code == 404


async def test_updating_a_delayed_queue_with_fair_only_settings_is_409_and_changes_nothing(
    tmp_path,
):
    async with api_app(str(tmp_path)) as api:
        await api.client.post(QUEUES, json={"name": "d", "type": "delayed"})
        response = await api.client.put(f"{QUEUES}/d", json={"settings": {"max_unacked": 1}})
        assert response.status_code == 409
        for _ in range(2):
            sent = {"priority": 1, "content": "x"}
            await api.client.post(f"{QUEUES}/d/messages", json=sent)
        # max_unacked was not applied: both messages can be in flight at once, as is documented
        for _ in range(2):
            assert (await api.client.get(f"{QUEUES}/d/messages")).status_code == 200
        info = await (await api.client.get(f"{QUEUES}/d")).get_json()
        assert info["settings"]["max_unacked"] == 0


async def test_the_defaults_of_fair_only_settings_are_accepted_on_a_delayed_queue(tmp_path):
    async with api_app(str(tmp_path)) as api:
        body = {"name": "d", "type": "delayed", "settings": {"max_unacked": 0, "ack_timeout": 5}}
        assert (await api.client.post(QUEUES, json=body)).status_code == 200
        update = {"settings": {"max_unacked": 0, "ack_timeout": 9}}
        assert (await api.client.put(f"{QUEUES}/d", json=update)).status_code == 200
