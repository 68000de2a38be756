"""The command-line client in-process (``doq.cli.main``) against a real one-node doq: each
subcommand's output (table, json, jsonl) and exit code (docs/client.md, "Command line")."""

from __future__ import annotations

import io
import json

import pytest

from doq.cli import main
from doq.cmd import output


@pytest.fixture
def doq(node, capsys, monkeypatch):
    monkeypatch.setenv("DOQ_SERVERS", node.url)

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_queues_create_list_info_update_delete(doq):
    code, out, _ = doq(
        "queues", "create", "c-q", "--type", "fair", "--ack-timeout", "30", "-o", "json"
    )
    assert code == 0 and json.loads(out)["settings"]["ack_timeout"] == 30
    code, out, _ = doq("queues", "list")
    assert code == 0 and out.split("\n")[0].split()[:2] == ["name", "type"] and "c-q" in out
    code, out, _ = doq("queues", "update", "c-q", "--max-unacked", "4", "-o", "json")
    assert json.loads(out)["settings"]["max_unacked"] == 4
    code, out, _ = doq("queues", "info", "c-q", "-o", "jsonl")
    assert json.loads(out)["total"] == 0
    assert doq("queues", "delete", "c-q")[0] == 0
    code, _, err = doq("queues", "info", "c-q")
    assert code == output.EXIT_NOT_FOUND and "not found" in err
    assert doq("queues", "create", "c-q", "--type", "delayed")[0] == 0
    assert doq("queues", "create", "c-q", "--type", "fair")[0] == output.EXIT_CONFLICT


def test_send_recv_ack_nack_touch_get_delete(doq):
    doq("queues", "create", "c-m")
    code, out, _ = doq("send", "c-m", "hello", "--priority", "3", "--metadata", "k=v", "-o", "json")
    sent = json.loads(out)
    assert code == 0 and sent["status"] == "ENQUEUED"
    code, out, _ = doq("send", "c-m", "again", "--id", sent["id"], "-o", "json")
    assert json.loads(out) == {"id": sent["id"], "status": "DUPLICATE"}
    code, out, _ = doq("get", "c-m", sent["id"], "-o", "json")
    assert json.loads(out)["metadata"] == {"k": "v"}
    code, out, _ = doq("recv", "c-m", "-o", "json")
    taken = json.loads(out)
    assert taken["id"] == sent["id"] and taken["receipt"]
    assert doq("touch", "c-m", taken["id"], "--receipt", taken["receipt"])[0] == 0
    assert doq("nack", "c-m", taken["id"], "--receipt", taken["receipt"])[0] == 0
    code, _, err = doq("ack", "c-m", taken["id"], "--receipt", taken["receipt"])
    assert code == output.EXIT_CONFLICT and "receipt" in err
    code, out, _ = doq("recv", "c-m", "--count", "5", "-o", "jsonl")
    again = [json.loads(line) for line in out.splitlines()]
    assert [m["id"] for m in again] == [sent["id"]]
    assert doq("ack", "c-m", sent["id"])[0] == 0
    assert doq("recv", "c-m", "--wait", "100ms")[0] == output.EXIT_EMPTY
    doq("send", "c-m", "gone")
    code, out, _ = doq("get", "messages", "-q", "c-m", "-o", "json")
    (listed,) = json.loads(out)
    assert doq("delete", "c-m", listed["id"])[0] == 0
    assert doq("delete", "c-m", listed["id"])[0] == output.EXIT_NOT_FOUND


def test_send_from_stdin_sends_every_line_in_batches(doq):
    doq("queues", "create", "c-stdin")
    lines = "".join(f"line {i}\n" for i in range(25))
    code, out, _ = doq("send", "c-stdin", "-", "--batch", "10", "-o", "json", stdin=lines)
    assert code == 0 and json.loads(out) == {"sent": 25, "duplicates": 0}
    code, out, _ = doq("recv", "c-stdin", "--count", "100", "--ack", "-o", "jsonl")
    assert sorted(json.loads(line)["content"] for line in out.splitlines()) == sorted(
        f"line {i}" for i in range(25)
    )


def test_a_delay_makes_the_message_due_later(doq):
    doq("queues", "create", "c-delay")
    assert doq("send", "c-delay", "later", "--delay", "1h")[0] == 0
    assert doq("recv", "c-delay")[0] == output.EXIT_EMPTY
    code, _, err = doq("send", "c-delay", "x", "--delay", "1h", "--priority", "3")
    assert code == output.EXIT_USAGE and "--delay" in err


def test_validation_and_usage_errors_have_their_exit_codes(doq, capsys):
    doq("queues", "create", "c-bad")
    code, _, err = doq("send", "c-bad", "x", "--priority", "-1")
    assert code == output.EXIT_INVALID and "body.priority" in err
    assert doq("queues", "create")[0] == output.EXIT_USAGE
    with pytest.raises(SystemExit) as usage:
        main(["recv"])
    assert usage.value.code == output.EXIT_USAGE


def test_cluster_status_backup_and_restore(doq, tmp_path):
    code, out, _ = doq("cluster", "status", "-o", "json")
    (member,) = json.loads(out)
    assert code == 0 and member["is_leader"] and member["suffrage"] == "Voter"
    doq("queues", "create", "c-backup")
    doq("send", "c-backup", "kept")
    backup = tmp_path / "b.db"
    code, out, _ = doq("backup", "-f", str(backup), "-o", "json")
    assert code == 0 and json.loads(out)["bytes"] == backup.stat().st_size > 0
    doq("queues", "delete", "c-backup")
    assert doq("restore", "-f", str(backup))[0] == 0
    code, out, _ = doq("queues", "info", "c-backup", "-o", "json")
    assert json.loads(out)["total"] == 1


def test_no_server_answering_is_exit_7(capsys, monkeypatch):
    from ..support import free_port

    monkeypatch.setenv("DOQ_SERVERS", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr("doq.client.sync.backoff_s", lambda *a, **kw: 0.0)  # no waits between
    assert main(["queues", "list"]) == output.EXIT_UNAVAILABLE
