"""``doq repair`` without a cluster: what it refuses, that a failed removal moves nothing, that the
data is moved aside (never deleted) once even when run twice, and the rejoin marker's rules.
The whole repair against real processes is tests/e2e/test_repair.py."""

from __future__ import annotations

import os

import pytest

from doq import cli, repair
from doq.config import Settings
from raft_zmq.storage import StorageCorruptError

from ..support import free_port


def settings(tmp_path, join: str = "") -> Settings:
    return Settings(
        storage__data_dir=str(tmp_path / "data"),
        cluster__node_id="node-2",
        cluster__join_addr=join,
        http__port=free_port(),
        raft__address="127.0.0.1:9002",
    )


def fill(node_dir: str) -> None:
    os.makedirs(os.path.join(node_dir, "raft", "log"))
    with open(os.path.join(node_dir, "raft", "log", "data.mdb"), "wb") as f:
        f.write(b"the evidence")


def test_repair_needs_a_join_address(tmp_path, capsys):
    args = ["--storage.data_dir", str(tmp_path), "--cluster.node_id", "node-2"]
    assert cli.main(["repair", *args]) == repair.EXIT_USAGE
    assert "--cluster.join_addr is required" in capsys.readouterr().err


def test_a_removal_that_fails_moves_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(repair, "LEAVE_TIMEOUT_S", 0.3)  # nobody listens on the join address
    s = settings(tmp_path, join=f"127.0.0.1:{free_port()}")
    fill(s.node_dir)
    args = ["--storage.data_dir", s.storage__data_dir, "--cluster.node_id", s.cluster__node_id]
    args += ["--cluster.join_addr", s.cluster__join_addr, "--http.port", str(s.http__port)]
    assert cli.main(["repair", *args]) == repair.EXIT_FAILED
    assert "nothing was moved" in capsys.readouterr().err
    assert os.listdir(s.storage__data_dir) == ["node-2"]
    assert not os.path.exists(os.path.join(s.node_dir, repair.REJOIN_MARKER))


def test_the_data_is_moved_aside_once_and_the_marker_rules_the_next_start(tmp_path):
    s = settings(tmp_path)
    fill(s.node_dir)
    aside = repair._move_aside(s.node_dir)
    assert aside is not None and aside.startswith(s.node_dir + ".corrupt-")
    with open(os.path.join(aside, "raft", "log", "data.mdb"), "rb") as f:
        assert f.read() == b"the evidence"
    assert os.listdir(s.node_dir) == [repair.REJOIN_MARKER]
    assert repair._move_aside(s.node_dir) is None  # run again: nothing more to move
    assert sorted(os.listdir(s.storage__data_dir)) == sorted(["node-2", os.path.basename(aside)])

    refusal = repair.rejoin_refusal(s)
    assert refusal is not None and "--cluster.join_addr" in refusal
    assert cli.main(["--storage.data_dir", s.storage__data_dir, "--cluster.node_id", "node-2"]) == 2
    assert repair.rejoin_refusal(settings(tmp_path, join="127.0.0.1:8001")) is None
    repair.clear_rejoin_marker(s.node_dir)  # what the node does once it is a voter again
    assert repair.rejoin_refusal(s) is None
    repair.clear_rejoin_marker(s.node_dir)  # and again, harmlessly


def test_the_repair_command_names_the_node(tmp_path):
    command = repair.repair_command(settings(tmp_path))
    assert command.startswith(f"doq repair --storage.data_dir {tmp_path}/data")
    assert "--cluster.node_id node-2 --cluster.join_addr <HTTP host:port" in command


@pytest.mark.parametrize("nested", [False, True])
def test_the_launcher_finds_storage_corruption_inside_exception_groups(nested):
    error = StorageCorruptError("log entry 3: checksum mismatch")
    raised: BaseException = ExceptionGroup("nursery", [ValueError("other"), error])
    if nested:
        raised = BaseExceptionGroup("outer", [raised])
    assert cli._find(raised, StorageCorruptError) is error
    assert cli._find(ValueError("x"), StorageCorruptError) is None
