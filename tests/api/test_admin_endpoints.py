"""The endpoints behind the admin UI (doq/api/routes_admin.py): peek takes nothing and follows
the index's order; members lists every member with its figures, through any node; transfer hands
leadership to the voter named."""

from __future__ import annotations

import httpx
import trio

from .support import api_app, followers_of, leader_of, served_cluster

QUEUES = "/API/v1/queues"


async def test_peek_shows_the_next_ready_messages_by_priority_and_takes_none(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await api.client.post(QUEUES, json={"name": "d", "type": "delayed"})
        for priority in (30, 10, 20):
            message = {"priority": priority, "content": f"p{priority}"}
            await api.client.post(f"{QUEUES}/d/messages", json=message)
        peeked = await (await api.client.get(f"{QUEUES}/d/peek?limit=2")).get_json()
        assert [m["priority"] for m in peeked["messages"]] == [10, 20]
        assert {m["status"] for m in peeked["messages"]} == {"GOT"}
        assert (await (await api.client.get(f"{QUEUES}/d")).get_json())["ready"] == 3
        assert (await api.client.get(f"{QUEUES}/d/peek?limit=0")).status_code == 422
        assert (await api.client.get(f"{QUEUES}/nope/peek")).status_code == 404


async def test_members_lists_every_member_with_its_figures_through_a_follower(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        follower = followers_of(nodes)[0]
        async with httpx.AsyncClient(base_url=follower.url) as client:
            body = (await client.get("/API/v1/cluster/members")).json()
        members = body["members"]
        assert sorted(m["id"] for m in members) == ["node-0", "node-1", "node-2"]
        assert all(m["reachable"] and m["suffrage"] == "Voter" for m in members)
        (leading,) = [m for m in members if m["is_leader"]]
        assert leading["id"] == leader_of(nodes).node_id and leading["role"] == "leader"
        assert all(m["lag"] >= 0 and m["term"] >= 1 for m in members)


async def test_transfer_hands_leadership_to_the_voter_named(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        target = followers_of(nodes)[0]
        async with httpx.AsyncClient(base_url=followers_of(nodes)[1].url) as client:
            response = await client.post("/API/v1/cluster/transfer", json={"id": target.node_id})
            assert response.status_code == 200, response.text
            with trio.fail_after(10):
                while not target.service.raft.is_leader:
                    await trio.sleep(0.01)
            stranger = await client.post("/API/v1/cluster/transfer", json={"id": "node-9"})
            assert stranger.status_code == 409
