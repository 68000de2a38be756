"""Configured caps on queues and on the messages one queue holds (doq/quotas.py): over a cap the
write is refused with 429 and Retry-After, on the fast path and the routes alike, and nothing is
written; under it, and once consumers make room, writes pass again."""

from __future__ import annotations

import pytest

from doq.quotas import Quotas

from .support import api_app

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"


def queue(name: str) -> dict:
    return {"name": name, "type": "fair", "settings": {}}


async def test_a_queue_over_the_cluster_cap_is_429_and_not_created(tmp_path):
    async with api_app(str(tmp_path), service_kwargs={"quotas": Quotas(queues_max=2)}) as h:
        for name in ("a", "b"):
            assert (await h.client.post(QUEUES, json=queue(name))).status_code == 200
        refused = await h.client.post(QUEUES, json=queue("c"))
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "5"
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert "queue.queues_max" in (await refused.get_json())["detail"]
        listed = await (await h.client.get(QUEUES)).get_json()
        assert sorted(q["name"] for q in listed["queues"]) == ["a", "b"]
        assert (await h.client.delete(f"{QUEUES}/a")).status_code == 200
        assert (await h.client.post(QUEUES, json=queue("c"))).status_code == 200


async def test_messages_over_a_queues_cap_are_429_until_consumers_make_room(tmp_path):
    quotas = Quotas(messages_per_queue_max=2)
    async with api_app(str(tmp_path), service_kwargs={"quotas": quotas}) as h:
        c = h.client
        await c.post(QUEUES, json=queue("q"))
        message = {"priority": 1, "content": "x"}
        for _ in range(2):
            assert (await c.post(f"{QUEUES}/q/messages", json=message)).status_code == 200
        refused = await c.post(f"{QUEUES}/q/messages", json=message)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
        assert (await (await c.get(f"{QUEUES}/q")).get_json())["total"] == 2
        got = await (await c.get(f"{QUEUES}/q/messages")).get_json()  # in flight: still held
        assert (await c.post(f"{QUEUES}/q/messages", json=message)).status_code == 429
        await c.post(f"{QUEUES}/q/messages/{got['id']}/ack")
        assert (await c.post(f"{QUEUES}/q/messages", json=message)).status_code == 200


def test_a_negative_quota_is_refused():
    with pytest.raises(ValueError):
        Quotas(queues_max=-1)
