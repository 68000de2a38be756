"""Queue names must round-trip through a URL path (issue 11, §5): a name with ``/`` or a dot
segment is refused with a 422 that states the rule; any other name, percent-encoded, addresses
its queue on every route, through Hypercorn's real path decoding, on the fast path and off it."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from doq.api.queue_rules import QUEUE_NAME_RULE

from .support import api_app, leader_of, served_cluster

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"


@pytest.mark.parametrize("name", ["a/b", "/", "a/", ".", ".."])
async def test_a_name_that_cannot_round_trip_through_a_path_is_refused_with_the_rule(
    tmp_path, name
):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.post(QUEUES, json={"name": name, "type": "delayed"})
        assert response.status_code == 422
        problem = await response.get_json()
        assert problem["errors"] == [
            {"message": QUEUE_NAME_RULE, "location": "body.name", "value": name}
        ]
        listed = await (await api.client.get(QUEUES)).get_json()
        assert listed["queues"] == []


@pytest.mark.parametrize("name", ["a b", "100%", "a%2Fb", "q?x#y", "été", "a.b", "...", "a+b"])
async def test_any_other_name_percent_encoded_addresses_its_queue_on_every_route(tmp_path, name):
    async with served_cluster(str(tmp_path), size=1) as nodes:
        base = leader_of(nodes).url
        path = f"{QUEUES}/{quote(name, safe='')}"
        async with httpx.AsyncClient(base_url=base) as client:
            created = await client.post(QUEUES, json={"name": name, "type": "delayed"})
            assert created.status_code == 200, created.text
            assert created.json()["name"] == name
            assert (await client.get(path)).json()["name"] == name
            sent = await client.post(f"{path}/messages", json={"priority": 1, "content": "x"})
            assert sent.status_code == 200, sent.text
            message_id = sent.json()["id"]
            got = await client.get(f"{path}/messages/{message_id}")
            assert got.status_code == 200, got.text
            taken = await client.get(f"{path}/messages", params={"ack": "true"})
            assert taken.json()["id"] == message_id
            assert (await client.delete(path)).status_code == 200
            assert (await client.get(QUEUES)).json()["queues"] == []
