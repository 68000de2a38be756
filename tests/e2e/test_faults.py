"""Faults on real node processes: a leader isolated from its peers by the transport's fault layer
(switched on at run time through each node's fault file), and a leader frozen with SIGSTOP.
Neither may acknowledge a write it cannot commit, and the majority must carry on without it."""

from __future__ import annotations

import json
import os
import signal

import httpx
import pytest

from .cluster import ProcessCluster, wait_for

Q = "/API/v1/queues"


@pytest.fixture
def cluster(tmp_path):
    root = str(tmp_path)
    c = ProcessCluster(root)
    for node in c.nodes:
        node.extra = [*node.extra, "--raft.faults_file", _faults_path(root, node.id)]
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _faults_path(root: str, node_id: str) -> str:
    return os.path.join(root, f"{node_id}.faults.json")


def _set_faults(cluster: ProcessCluster, node, spec: dict) -> None:
    path = _faults_path(cluster.root, node.id)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(spec, f)
    os.replace(tmp, path)  # the node re-reads the file; never let it see half a spec


def test_an_isolated_leader_acknowledges_nothing_and_the_majority_moves_on(cluster):
    old = cluster.leader()
    assert cluster.post(old, Q, json={"name": "q", "type": "delayed"}).is_success
    others = [n for n in cluster.nodes if n is not old]
    peer_ids = [n.id for n in others]
    _set_faults(cluster, old, {"partition_outbound": peer_ids, "partition_inbound": peer_ids})

    new = cluster.leader(among=others)
    assert new is not old
    accepted = cluster.post(new, f"{Q}/q/messages", json={"id": "1", "priority": 0, "content": "a"})
    assert accepted.status_code == 200

    # The cut-off node must not acknowledge: it steps down (check-quorum) and cannot reach the
    # new leader, so a write through it times out as 503, never 200.
    refused = httpx.post(
        f"{old.url}{Q}/q/messages",
        json={"id": "2", "priority": 0, "content": "b"},
        timeout=30.0,
    )
    assert refused.status_code == 503, refused.text
    assert refused.headers.get("retry-after")

    _set_faults(cluster, old, {})  # heal
    cluster.wait_for_voters(3, via=old)
    wait_for(lambda: cluster.get(old, "/readyz").status_code == 200, 30, "healed readyz")
    seen = cluster.get(old, f"{Q}/q/messages/1")
    assert seen.status_code == 200 and seen.json()["content"] == "a"
    leaders = {s["id"] for n in cluster.nodes for s in cluster.servers(n) if s["is_leader"]}
    assert len(leaders) == 1


def test_a_paused_leader_is_replaced_and_steps_down_when_it_wakes(cluster):
    old = cluster.leader()
    assert cluster.post(old, Q, json={"name": "q", "type": "delayed"}).is_success
    old.signal(signal.SIGSTOP)
    try:
        others = [n for n in cluster.nodes if n is not old]

        def leads(n) -> bool:
            return any(s["is_leader"] and s["id"] == n.id for s in cluster.servers(n))

        new = wait_for(
            lambda: next((n for n in others if leads(n)), None),
            30,
            "a new leader while the old one is frozen",
        )
        r = cluster.post(new, f"{Q}/q/messages", json={"id": "7", "priority": 0, "content": "x"})
        assert r.status_code == 200
    finally:
        old.signal(signal.SIGCONT)
    wait_for(
        lambda: not any(s["is_leader"] and s["id"] == old.id for s in cluster.servers(old)),
        30,
        "the woken leader to step down",
    )
    wait_for(lambda: cluster.get(old, f"{Q}/q/messages/7").status_code == 200, 30, "catch-up")
