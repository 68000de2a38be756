"""The client Service follows the leader, on a real 3-pod cluster whose leaders write the
EndpointSlice through lightkube to the stand-in API server on 127.0.0.1: the slice names the
leader; kill -9 the leader and it names the new one within a bound; a leader that is deposed
(isolated, so it steps down) withdraws at once; API errors are retried and no node crashes."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from ..e2e.cluster import wait_for
from .fake_api import FakeKubernetesApi
from .pods import CLIENT_SERVICE, NAMESPACE, PodCluster

pytestmark = pytest.mark.slow
# An election (20 ms ticks, 300-600 ms timeout), the change noticed (50 ms), two API calls.
NEW_LEADER_NAMED_S_MAX = 10.0


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
    api.fail_next = 5  # the first calls fail: retried, never fatal
    cluster = PodCluster(
        str(tmp_path),
        extra=["--cluster.leader_service", CLIENT_SERVICE],
        env={"KUBECONFIG": str(config)},
    )
    for pod in cluster.nodes:
        pod.extra = [*pod.extra, "--raft.faults_file", _faults_path(cluster, pod)]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _faults_path(cluster, pod) -> str:
    return os.path.join(cluster.root, f"{pod.id}.faults.json")


def _named(api) -> str | None:
    return api.named(NAMESPACE, CLIENT_SERVICE)


def test_the_endpoint_names_the_leader_and_follows_it_after_kill_9(pods, api):
    leader = pods.leader()
    wait_for(lambda: _named(api) == leader.id, 30, "the slice to name the leader")
    assert api.failed == 5
    body = api.slice(NAMESPACE, CLIENT_SERVICE)
    assert body["ports"][0]["port"] == leader.http_port
    assert body["endpoints"][0]["conditions"]["ready"] is True

    leader.kill()
    killed_at = time.monotonic()
    successor = pods.leader(among=[p for p in pods.nodes if p is not leader])
    wait_for(lambda: _named(api) == successor.id, NEW_LEADER_NAMED_S_MAX, "the slice to follow")
    assert time.monotonic() - killed_at <= NEW_LEADER_NAMED_S_MAX
    assert all(p.alive for p in pods.nodes if p is not leader)


def test_a_deposed_leader_withdraws_at_once(pods, api):
    leader = pods.leader()
    wait_for(lambda: _named(api) == leader.id, 30, "the slice to name the leader")
    others = [p for p in pods.nodes if p is not leader]
    # The successor may not publish yet, so that the only write is the deposed one's.
    api.refuse_naming = {p.id for p in others}
    cut = {
        "partition_outbound": [p.id for p in others],
        "partition_inbound": [p.id for p in others],
    }
    path = _faults_path(pods, leader)
    with open(path + ".tmp", "w") as f:
        json.dump(cut, f)
    os.replace(path + ".tmp", path)
    wait_for(lambda: _named(api) is None, 30, "the isolated leader to withdraw")
    assert api.history[-1][1] is None
    api.refuse_naming = set()
    successor = pods.leader(among=others)
    wait_for(lambda: _named(api) == successor.id, 30, "the successor to publish itself")
    assert all(p.alive for p in pods.nodes)
    leader.signal(signal.SIGTERM)
