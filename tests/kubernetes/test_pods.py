"""Pods of a StatefulSet as real node processes on 127.0.0.1, finding each other through "DNS"
answers alone (a file standing in for the headless service): they form a cluster with pod 0 as
founder, pod 0 restarted with its volume rejoins as itself, a scaled-up pod joins as a non-voter
and is promoted once it has caught up, and the preStop hook takes a pod scaled away out of the
configuration (and only such a pod)."""

from __future__ import annotations

import json
import os

import pytest

from ..e2e.cluster import wait_for
from .fake_api import FakeKubernetesApi
from .pods import NAMESPACE, PodCluster

pytestmark = pytest.mark.slow
Q = "/API/v1/queues"


@pytest.fixture
def api():
    stand_in = FakeKubernetesApi()
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def pods(tmp_path, api):
    config = tmp_path / "kubeconfig"
    config.write_text(api.kubeconfig(NAMESPACE))
    cluster = PodCluster(str(tmp_path), env={"KUBECONFIG": str(config)})
    try:
        cluster.start()  # all three at once, as a StatefulSet with Parallel pod management
        yield cluster
    finally:
        cluster.stop()


def _suffrage(cluster, via, node_id):
    return {s["id"]: s["suffrage"] for s in cluster.servers(via)}.get(node_id)


def test_pods_form_a_cluster_from_dns_alone_and_pod_0_restarts_as_itself(pods):
    ids = ["doq-0", "doq-1", "doq-2"]
    for pod in pods.nodes:
        servers = pods.servers(pod)
        assert sorted(s["id"] for s in servers) == ids
        assert {s["suffrage"] for s in servers} == {"Voter"}
        assert {s["id"]: s["http_addr"] for s in servers} == {
            p.id: p.http_address for p in pods.nodes
        }
    assert "bootstrapping" in pods.nodes[0].log()
    for pod in pods.nodes[1:]:
        assert "joined the cluster through" in pod.log()
        assert "bootstrapping" not in pod.log()

    pod0 = pods.nodes[0]
    pod0.kill()
    pod0.start()
    wait_for(lambda: pods.get(pod0, "/readyz").status_code == 200, 60, "pod 0 ready again")
    pods.wait_for_voters(3, via=pod0)
    assert sorted(s["id"] for s in pods.servers(pod0)) == ids
    leader = pods.leader()
    created = pods.post(leader, Q, json={"name": "after", "type": "delayed", "settings": {}})
    assert created.status_code == 200, created.text
    wait_for(
        lambda: pods.get(pod0, f"{Q}/after").status_code == 200, 30, "pod 0 serves the new queue"
    )


def _faults(pods, pod, spec):
    path = os.path.join(pods.root, f"{pod.id}.faults.json")
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f)
    os.replace(path + ".tmp", path)
    return path


def test_a_scaled_up_pod_is_a_learner_until_caught_up_and_prestop_removes_it(pods, api):
    # The new pod receives nothing from the others at first, so it cannot catch up: it must
    # stay a non-voter, and the three voters keep committing without it.
    newcomer = pods.add_pod()
    cut = {"partition_inbound": [p.id for p in pods.nodes[:3]]}
    newcomer.extra = [*newcomer.extra, "--raft.faults_file", _faults(pods, newcomer, cut)]
    newcomer.start()
    first = pods.nodes[0]
    wait_for(lambda: _suffrage(pods, first, "doq-3") == "Nonvoter", 60, "doq-3 as a non-voter")
    created = pods.post(first, Q, json={"name": "jobs", "type": "delayed", "settings": {}})
    assert created.status_code == 200, created.text
    assert _suffrage(pods, first, "doq-3") == "Nonvoter"
    _faults(pods, newcomer, {})
    pods.wait_for_voters(4)

    # A pod that restarts (ordinal below replicas) stays a member.
    api.set_replicas(NAMESPACE, "doq", 4)
    stays = pods.nodes[1].prestop()
    assert stays.returncode == 0, stays.stderr
    assert "staying" in stays.stderr
    assert _suffrage(pods, first, "doq-1") == "Voter"

    # Scaled down to 3: doq-3 leaves before it goes, and does not ask to join again.
    api.set_replicas(NAMESPACE, "doq", 3)
    goes = newcomer.prestop()
    assert goes.returncode == 0, goes.stderr
    pods.wait_for_voters(3)
    assert "doq-3" not in {s["id"] for s in pods.servers(first)}

    # kubelet sends SIGTERM once the hook returns; the pod stops cleanly and stays out.
    assert newcomer.stop() == 0
    pods.nodes.remove(newcomer)
    leader = pods.leader()
    created = pods.post(leader, Q, json={"name": "after", "type": "delayed", "settings": {}})
    assert created.status_code == 200, created.text
    assert sorted(s["id"] for s in pods.servers(leader)) == ["doq-0", "doq-1", "doq-2"]
