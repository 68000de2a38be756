"""A join of an existing member's id with another Raft address (issue 11, §5): it used to rewrite
that member's address, even the leader's own, to wherever the request said. It is refused (409)
unless the request says ``replace_unreachable: true`` and nothing answers at the member's
current address; then the member is moved."""

from __future__ import annotations

import httpx
import trio

from tests.support import free_port

from .support import api_app, followers_of, leader_of, served_cluster

JOIN = "/API/v1/cluster/join"


async def test_a_join_that_moves_the_leader_is_409_with_or_without_replace(tmp_path):
    async with api_app(str(tmp_path)) as api:
        (me,) = api.service.servers()
        elsewhere = f"127.0.0.1:{free_port()}"
        for extra in ({}, {"replace_unreachable": True}):
            response = await api.client.post(
                JOIN, json={"id": "node-0", "addr": elsewhere, **extra}
            )
            assert response.status_code == 409, extra
            problem = await response.get_json()
            assert me.raft_address in problem["detail"] and elsewhere in problem["detail"]
        assert api.service.servers()[0].raft_address == me.raft_address


async def test_a_member_is_moved_only_when_asked_and_nothing_answers_at_its_address(tmp_path):
    async with served_cluster(str(tmp_path)) as nodes:
        leader = leader_of(nodes)
        gone = followers_of(nodes)[0]
        old = gone.service.raft.address
        new = f"127.0.0.1:{free_port()}"
        body = {"id": gone.node_id, "addr": new, "replace_unreachable": True}
        async with httpx.AsyncClient(base_url=leader.url, timeout=10) as client:
            alive = await client.post(JOIN, json=body)
            assert alive.status_code == 409 and f"answers at {old}" in alive.json()["detail"]
            gone.service.raft._nursery.cancel_scope.cancel()  # the member's process dies
            with trio.fail_after(5):
                while not gone.service.raft._stopped:
                    await trio.sleep(0.01)
            unasked = await client.post(JOIN, json={"id": gone.node_id, "addr": new})
            assert unasked.status_code == 409 and "replace_unreachable" in unasked.json()["detail"]
            assert leader.service.raft.server(gone.node_id).address == old
            moved = await client.post(JOIN, json=body)
            assert moved.status_code == 200, moved.text
        assert leader.service.raft.server(gone.node_id).address == new
