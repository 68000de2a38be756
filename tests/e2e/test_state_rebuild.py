"""End to end: a node's queue state is not synced at each apply (doq/state/unsynced.py). A real
node process killed with kill -9 keeps every answered write; killed and then "rebooted" (its boot
file changed) with its state file lost, it rebuilds the state from its Raft log: every answered
enqueue is there once and nothing taken before the crash comes back."""

from __future__ import annotations

import os

import pytest

from .cluster import ProcessCluster, wait_for

pytestmark = pytest.mark.slow

Q = "/API/v1/queues"


def _ready(cluster: ProcessCluster) -> bool:
    return cluster.get(cluster.nodes[0], "/readyz").status_code == 200


def _drain(cluster: ProcessCluster) -> list[int]:
    taken = []
    while True:
        r = cluster.get(cluster.nodes[0], f"{Q}/work/messages", params={"ack": "true"})
        if r.status_code == 400:
            return taken
        assert r.status_code == 200, r.text
        taken.append(int(r.json()["id"]))


def test_kill_9_then_a_reboot_that_lost_the_state_loses_nothing(tmp_path):
    boot_file = tmp_path / "boot_id"
    boot_file.write_text("boot-1")
    cluster = ProcessCluster(
        str(tmp_path), size=1, extra=["--storage.boot_id_file", str(boot_file)]
    )
    node = cluster.nodes[0]
    try:
        cluster.start()
        assert cluster.post(node, Q, json={"name": "work", "type": "delayed"}).is_success
        answered = []
        for i in range(40):
            r = cluster.post(node, f"{Q}/work/messages", json={"priority": 1, "content": f"m{i}"})
            assert r.status_code == 200, r.text
            answered.append(int(r.json()["id"]))
        taken = [int(cluster.get(node, f"{Q}/work/messages?ack=true").json()["id"])]

        node.kill()  # kill -9 under the same boot: the kernel kept the state's writes
        node.start()
        wait_for(lambda: _ready(cluster), 60, "restarted readyz")
        assert cluster.get(node, f"{Q}/work").json()["ready"] == 39

        node.kill()
        boot_file.write_text("boot-2")  # the machine restarted...
        state_file = os.path.join(str(tmp_path), "data", node.id, "state", "data.mdb")
        with open(state_file, "r+b") as f:  # ...and the unsynced state never reached the disk
            f.write(b"\0" * os.path.getsize(state_file))
        node.start()
        wait_for(lambda: _ready(cluster), 60, "rebuilt readyz")
        assert "discarded" in node.log()
        remaining = _drain(cluster)
        assert sorted(remaining) == sorted(set(answered) - set(taken))
    finally:
        cluster.stop()
