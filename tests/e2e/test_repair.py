"""End to end: a follower whose last Raft log entry is corrupt refuses to start (a clear message,
exit status 65, no traceback); ``doq repair`` removes it from the cluster and moves its data
aside; started again with --cluster.join_addr it rejoins as a non-voter, receives a snapshot and
the log, is promoted, and holds every acknowledged message. Real processes on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import lmdb
import pytest

from doq.state.machine import QueueStateMachine
from doq.state.results import StoredMessage
from raft_zmq.storage import index_key

from .cluster import STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, NodeProcess, ProcessCluster, wait_for

Q = "/API/v1/queues"
EXIT_STORAGE_CORRUPT = 65
SNAPSHOT_INTERVAL_ENTRIES = 40  # small, so that the rejoining node needs a snapshot


@pytest.fixture
def cluster(tmp_path):
    extra = ["--raft.snapshot_interval_entries", str(SNAPSHOT_INTERVAL_ENTRIES)]
    c = ProcessCluster(str(tmp_path), extra=extra)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _enqueue(cluster: ProcessCluster, ids: range) -> list[int]:
    """Enqueue one message per client-chosen ID, retrying a 503 (the retry is safe: same ID)."""
    acknowledged = []
    for message_id in ids:
        body = {"id": str(message_id), "priority": 1, "content": f"m{message_id}"}

        def accepted(body=body) -> bool:
            r = cluster.post(cluster.leader(), f"{Q}/work/messages", json=body)
            assert r.status_code in (200, 503), r.text
            return r.status_code == 200

        wait_for(accepted, STARTUP_TIMEOUT_S, f"enqueue of {message_id}")
        acknowledged.append(message_id)
    return acknowledged


def _corrupt_last_entry(log_dir: str) -> int:
    env = lmdb.open(log_dir, subdir=True, max_dbs=2)
    try:
        with env.begin(write=True, db=env.open_db(b"raft_log")) as txn:
            cursor = txn.cursor()
            assert cursor.last()
            key, value = cursor.key(), bytearray(cursor.value())
            value[-1] ^= 0xFF  # one damaged byte: only the checksum can tell
            txn.put(key, bytes(value))
            assert bytes(txn.get(index_key(int.from_bytes(key, "big")))) == bytes(value)
            return int.from_bytes(key, "big")
    finally:
        env.close()


def _run_to_exit(node: NodeProcess) -> int:
    node.start()
    assert node.popen is not None
    return node.popen.wait(timeout=STARTUP_TIMEOUT_S)


def _doq_repair(
    cluster: ProcessCluster, node: NodeProcess, join: NodeProcess
) -> subprocess.CompletedProcess[str]:
    argv = [
        *(sys.executable, "-m", "doq", "repair"),
        *("--storage.data_dir", f"{cluster.root}/data", "--cluster.node_id", node.id),
        *("--cluster.join_addr", join.http_address),
        *("--raft.address", f"127.0.0.1:{node.raft_port}", "--http.port", str(node.http_port)),
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S + STOP_TIMEOUT_S
    )


def _metric(cluster: ProcessCluster, node: NodeProcess, name: str) -> int:
    for line in cluster.get(node, "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise KeyError(name)


def test_a_follower_with_a_corrupt_last_entry_is_repaired_by_rejoining(cluster, tmp_path):
    leader = cluster.leader()
    assert cluster.post(leader, Q, json={"name": "work", "type": "delayed"}).is_success
    acknowledged = _enqueue(cluster, range(1, 61))

    victim = cluster.followers()[0]
    assert victim.stop() == 0
    node_dir = os.path.join(cluster.root, "data", victim.id)
    corrupt_index = _corrupt_last_entry(os.path.join(node_dir, "raft", "log"))

    # It refuses to start, saying why and what to do, and keeps refusing.
    for _ in range(2):
        assert _run_to_exit(victim) == EXIT_STORAGE_CORRUPT
    log = victim.log()
    assert f"log entry {corrupt_index}: checksum mismatch" in log
    assert f"doq repair --storage.data_dir {cluster.root}/data --cluster.node_id {victim.id}" in log
    assert "Traceback" not in log

    acknowledged += _enqueue(cluster, range(61, 121))  # the majority carries on meanwhile
    leader = cluster.leader(among=[n for n in cluster.nodes if n is not victim])
    repaired = _doq_repair(cluster, victim, join=leader)
    assert repaired.returncode == 0, repaired.stderr
    assert victim.id not in {s["id"] for s in cluster.servers(leader)}
    aside = [name for name in os.listdir(os.path.join(cluster.root, "data")) if ".corrupt-" in name]
    assert aside == [f"{victim.id}.corrupt-{aside[0].split('.corrupt-')[1]}"]  # kept, not deleted
    assert os.path.exists(os.path.join(cluster.root, "data", aside[0], "raft", "log", "data.mdb"))

    # Started without a join address, the emptied node would bootstrap a cluster of its own.
    victim.join = None
    assert _run_to_exit(victim) == 2
    assert "--cluster.join_addr" in victim.log().splitlines()[-1]

    victim.join = leader.http_address
    victim.start()
    cluster.wait_for_voters(3, via=leader)
    acknowledged += _enqueue(cluster, range(121, 141))
    commit = _metric(cluster, leader, "doq_raft_commit_index")
    wait_for(
        lambda: _metric(cluster, victim, "doq_raft_applied_index") >= commit,
        STARTUP_TIMEOUT_S,
        "the rejoined node to apply everything committed",
    )
    assert victim.stop() == 0

    # Its own state holds every acknowledged message (it caught up, not only the others).
    state = QueueStateMachine(os.path.join(node_dir, "state"))
    try:
        for message_id in acknowledged:
            assert isinstance(state.get_message("work", message_id), StoredMessage), message_id
    finally:
        state.close()

    # A voter again, it restarts as any member does, without a join address.
    victim.join = None
    victim.start()
    wait_for(lambda: cluster.get(victim, "/readyz").status_code == 200, STARTUP_TIMEOUT_S, "ready")
    delivered = []
    while True:
        r = cluster.get(victim, f"{Q}/work/messages", params={"ack": "true"})
        if r.status_code == 400:
            break
        assert r.status_code == 200, r.text
        delivered.append(int(r.json()["id"]))
    assert sorted(delivered) == acknowledged
    assert "Traceback" not in victim.log()


def test_repair_refuses_a_node_that_is_running(cluster):
    victim = cluster.followers()[0]
    repaired = _doq_repair(cluster, victim, join=cluster.nodes[0])
    assert repaired.returncode == 1
    assert "stop it first" in repaired.stderr
    assert victim.id in {s["id"] for s in cluster.servers(cluster.nodes[0])}
    assert not any(".corrupt-" in name for name in os.listdir(os.path.join(cluster.root, "data")))
    httpx.get(victim.url + "/livez").raise_for_status()
