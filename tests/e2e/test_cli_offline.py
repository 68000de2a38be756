"""The offline commands on a real node's data directory: ``doq get queues``, ``doq get
messages`` and ``doq restore -f`` work on a stopped node's (copied) directory, and are refused
with exit 9 while a node runs on it, which they leave untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from doq.client import Client
from doq.cmd.output import EXIT_REFUSED

from .cluster import ProcessCluster

pytestmark = pytest.mark.slow


def _doq(*argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "doq", *argv], capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def test_offline_get_and_restore_on_a_stopped_node_and_refusal_on_a_live_one(tmp_path):
    (tmp_path / "run").mkdir()
    cluster = ProcessCluster(str(tmp_path / "run"), size=1)
    try:
        cluster.start()
        (node,) = cluster.nodes
        with Client(node.url) as client:
            client.create_queue("emails", ack_timeout=60)
            sent = client.enqueue_many("emails", ["a", "b", "c"])
            backup = tmp_path / "backup.db"
            backup.write_bytes(client.backup().data)
            client.enqueue("emails", "after the backup")
        data_dir = str(tmp_path / "run" / "data")
        code, out, err = _doq("get", "queues", "--data-dir", data_dir)
        assert code == EXIT_REFUSED and "running" in err and out == ""
        code, _, err = _doq("restore", "-f", str(backup), "--data-dir", data_dir)
        assert code == EXIT_REFUSED
        assert node.stop() == 0
    finally:
        cluster.stop()
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)

    code, out, _ = _doq("get", "queues", "--data-dir", str(copy), "-o", "json")
    assert code == 0
    (queue,) = json.loads(out)
    assert (queue["name"], queue["ready"], queue["total"]) == ("emails", 4, 4)
    code, out, _ = _doq(
        "get", "messages", "-q", "emails", "-n", "2", "--data-dir", str(copy), "-o", "jsonl"
    )
    assert [json.loads(line)["content"] for line in out.splitlines()] == ["a", "b"]
    code, out, _ = _doq(
        "get", "messages", "-q", "emails", str(sent[2].id), "--data-dir", str(copy), "-o", "json"
    )
    assert json.loads(out)[0]["content"] == "c"
    code, out, _ = _doq("get", "queues", "--data-dir", str(copy), "-o", "text")
    assert code == 0 and "emails" in out and out.splitlines()[0].split()[0] == "name"

    code, out, _ = _doq("restore", "-f", str(backup), "--data-dir", str(copy), "-o", "json")
    assert code == 0, out
    code, out, _ = _doq("get", "queues", "--data-dir", str(copy), "-o", "json")
    assert json.loads(out)[0]["total"] == 3
    code, _, err = _doq("get", "messages", "-q", "nope", "--data-dir", str(copy))
    assert code == 3 and "nope" in err
