"""End to end with real node processes on 127.0.0.1, closed with a cluster key and API tokens:
the cluster forms through authenticated joins; a fourth process holding a valid admin token but
another cluster key is let into the configuration by the API (its credentials are good) and yet
never becomes a voter and never learns a leader: every Raft handshake between it and the members
is refused and counted in its metrics, while the cluster keeps committing."""

from __future__ import annotations

import re

import pytest

from raft_zmq.curve import ClusterKey

from .cluster import STARTUP_TIMEOUT_S, NodeProcess, ProcessCluster, wait_for

ADMIN = "admin-token-0123456789"
REFUSED = re.compile(r"^doq_raft_transport_refused_handshake_total (\S+)$", re.M)


@pytest.fixture
def secure(tmp_path):
    key_file, tokens_file = tmp_path / "cluster.key", tmp_path / "tokens"
    ClusterKey.generate().write(key_file)
    tokens_file.write_text(f"{ADMIN} admin\n")
    extra = ["--raft.curve_key_file", str(key_file), "--http.tokens_file", str(tokens_file)]
    cluster = ProcessCluster(str(tmp_path), extra=extra)
    cluster.client.headers["Authorization"] = f"Bearer {ADMIN}"
    try:
        cluster.start()
        yield cluster, tokens_file
    finally:
        cluster.stop()


def refused_handshakes(cluster: ProcessCluster, node: NodeProcess) -> float:
    found = REFUSED.search(cluster.get(node, "/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_a_process_with_the_wrong_key_cannot_become_a_member(secure, tmp_path):
    cluster, tokens_file = secure
    leader = cluster.leader()
    other_key = tmp_path / "other.key"
    ClusterKey.generate().write(other_key)
    extra = ["--raft.curve_key_file", str(other_key), "--http.tokens_file", str(tokens_file)]
    intruder = NodeProcess(str(tmp_path), 9, cluster.nodes[0].http_address, extra)
    intruder.start()
    try:
        wait_for(
            lambda: any(s["id"] == intruder.id for s in cluster.servers(leader)),
            STARTUP_TIMEOUT_S,
            "the intruder's join to reach the configuration",
        )
        # The leader now dials the intruder (which, knowing no configuration, dials nobody):
        # the intruder's ROUTER refuses the leader's handshakes, and counts them.
        wait_for(
            lambda: refused_handshakes(cluster, intruder) >= 1,
            STARTUP_TIMEOUT_S,
            "the intruder to refuse the leader's handshakes",
        )
        created = cluster.post(leader, "/API/v1/queues", json={"name": "q", "type": "fair"})
        assert created.status_code == 200, created.text
        listed = {s["id"]: s for s in cluster.servers(leader)}
        assert listed[intruder.id]["suffrage"] != "Voter"
        assert sum(s["suffrage"] == "Voter" for s in listed.values()) == 3
        intruders_view = cluster.get(intruder, "/readyz")
        assert intruders_view.status_code != 200  # it never learned a leader
        assert intruder.alive
    finally:
        intruder.stop()
