"""Delivery receipts over HTTP: every dequeue names its delivery; ack, nack and touch with a
stale receipt answer 409 and change nothing; without one the Go behaviour holds; a receipt is
relayed by followers and still holds after a leader change."""

from __future__ import annotations

import httpx
import pytest
import trio

from doq.service import wall_clock_ms

from .support import api_app, followers_of, leader_of, served_cluster
from .test_messages import QUEUES

pytestmark = pytest.mark.usefixtures("fast_path")

M = f"{QUEUES}/q/messages"


async def short_lease_queue(client, timeout_s=1):
    body = {"name": "q", "type": "delayed", "settings": {"ack_timeout": timeout_s}}
    assert (await client.post(QUEUES, json=body)).status_code == 200


class SteppedClock:
    """The leader's clock for commands, moved by the test (leases pass without waiting)."""

    def __init__(self) -> None:
        self.now_ms = wall_clock_ms()

    def __call__(self, service):
        service._clock_ms = lambda: self.now_ms
        return service


async def test_a_stale_receipt_is_refused_and_the_current_one_works(tmp_path):
    clock = SteppedClock()
    async with api_app(str(tmp_path), service_wrapper=clock) as api:
        client = api.client
        await short_lease_queue(client)
        await client.post(M, json={"priority": 0, "content": "job"})
        first = await client.get(M)
        message_id = (await first.get_json())["id"]
        stale = first.headers["X-Doq-Receipt"]
        assert stale == f"{message_id}.1"
        clock.now_ms += 1_000  # the lease passes
        second = await client.get(M)
        fresh = second.headers["X-Doq-Receipt"]
        assert fresh == f"{message_id}.2" and fresh != stale
        for verb in ("ack", "touch"):
            refused = await client.post(f"{M}/{message_id}/{verb}?receipt={stale}")
            assert refused.status_code == 409, verb
            assert refused.headers["Content-Type"] == "application/problem+json"
        refused = await client.post(
            f"{M}/{message_id}/nack", json={"priority": 0, "receipt": stale}
        )
        assert refused.status_code == 409
        info = await (await client.get(f"{QUEUES}/q")).get_json()
        assert (info["unacked"], info["ready"]) == (1, 0)
        touched = await client.post(f"{M}/{message_id}/touch?receipt={fresh}")
        assert touched.status_code == 200
        acked = await client.post(f"{M}/{message_id}/ack?receipt={fresh}")
        assert (await acked.get_json())["status"] == "ACKNOWLEDGED"


async def test_without_a_receipt_the_go_behaviour_holds_and_bad_receipts_are_422(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await short_lease_queue(client, timeout_s=60)
        await client.post(M, json={"priority": 0, "content": "job"})
        message_id = (await (await client.get(M)).get_json())["id"]
        for receipt, location in (
            ("nonsense", "query.receipt"),
            ("1.1", "query.receipt"),  # another message's
            (f"{message_id}.x", "query.receipt"),
        ):
            bad = await client.post(f"{M}/{message_id}/ack?receipt={receipt}")
            assert bad.status_code == 422, receipt
            (error,) = (await bad.get_json())["errors"]
            assert error["location"] == location
        both = await client.post(
            f"{M}/{message_id}/nack?receipt={message_id}.1",
            json={"priority": 0, "receipt": f"{message_id}.2"},
        )
        assert both.status_code == 422
        assert (await client.post(f"{M}/{message_id}/touch")).status_code == 200
        assert (await client.post(f"{M}/{message_id}/ack")).status_code == 200


async def test_batch_items_take_receipts(tmp_path):
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await short_lease_queue(client, timeout_s=60)
        await client.post(f"{M}/batch", json={"messages": [{"priority": 0, "content": "a"}] * 2})
        a, b = [await client.get(M) for _ in range(2)]
        a_id, b_id = (await a.get_json())["id"], (await b.get_json())["id"]
        good = {"id": a_id, "receipt": a.headers["X-Doq-Receipt"]}
        stale = {"id": b_id, "receipt": f"{b_id}.7"}
        answer = await client.post(f"{M}/ack", json={"ids": [good, stale]})
        first, second = (await answer.get_json())["results"]
        assert first["status"] == "ACKNOWLEDGED"
        assert second["status"] == "FAILED" and second["error"]["status"] == 409
        nacked = await client.post(
            f"{M}/nack", json={"messages": [{"id": b_id, "receipt": b.headers["X-Doq-Receipt"]}]}
        )
        assert (await nacked.get_json())["results"][0]["status"] == "UNACKNOWLEDGED"


async def test_a_receipt_is_relayed_by_a_follower_and_holds_after_a_leader_change(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        first, second = followers_of(nodes)
        async with httpx.AsyncClient() as http:
            body = {"name": "q", "type": "delayed", "settings": {"ack_timeout": 60}}
            await http.post(f"{first.url}{QUEUES}", json=body)
            await http.post(f"{first.url}{M}", json={"priority": 0, "content": "x"})
            dequeued = await http.get(f"{first.url}{M}")
            receipt = dequeued.headers["X-Doq-Receipt"]
            message_id = dequeued.json()["id"]
            assert receipt == f"{message_id}.1"
            await leader_of(nodes).service.raft.transfer_leadership(second.node_id)
            with trio.fail_after(10):
                while not second.service.raft.is_leader:
                    await trio.sleep(0.01)
            stale = await http.post(f"{first.url}{M}/{message_id}/ack?receipt={message_id}.0")
            assert stale.status_code == 409
            acked = await http.post(f"{first.url}{M}/{message_id}/ack?receipt={receipt}")
            assert acked.status_code == 200, acked.text
