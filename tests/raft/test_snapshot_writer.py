"""The node's snapshot writer (raft_zmq/snapshot_writer.py): a state machine that offers
``snapshot_command`` has its snapshot written by that process; one that fails, is killed or
answers nonsense raises; cancelling the node's task stops the process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

from raft_zmq.snapshot_writer import SnapshotProcessError, parse_index_term, write_snapshot

DEADLINE_S = 30


class ScriptedStateMachine:
    """Only what the writer calls: ``snapshot_command`` runs ``script`` (Python) with the path."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.in_thread_calls = 0

    def snapshot_command(self, path: str) -> list[str]:
        return [sys.executable, "-c", self.script, path]

    def snapshot(self, path: str) -> tuple[int, int]:
        self.in_thread_calls += 1
        return (0, 0)


class ThreadOnly:
    def snapshot(self, path: str) -> tuple[int, int]:
        Path(path).write_bytes(b"in thread")
        return (7, 2)


async def test_a_state_machine_with_a_command_is_snapshotted_by_its_process(tmp_path) -> None:
    sm = ScriptedStateMachine(
        "import sys; open(sys.argv[1], 'wb').write(b'snap'); print('noise'); print('42 3')"
    )
    out = str(tmp_path / "snap")
    with trio.fail_after(DEADLINE_S):
        assert await write_snapshot(sm, out) == (42, 3)  # type: ignore[arg-type]
    assert Path(out).read_bytes() == b"snap" and sm.in_thread_calls == 0


async def test_a_state_machine_without_one_is_snapshotted_in_a_thread(tmp_path) -> None:
    with trio.fail_after(DEADLINE_S):
        assert await write_snapshot(ThreadOnly(), str(tmp_path / "snap")) == (7, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "script",
    [
        "import sys; sys.stderr.write('disk on fire'); sys.exit(3)",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "print('done')",
        "pass",
    ],
    ids=["fails", "killed", "nonsense", "silent"],
)
async def test_a_process_that_does_not_answer_its_index_raises(tmp_path, script: str) -> None:
    with trio.fail_after(DEADLINE_S), pytest.raises(SnapshotProcessError):
        await write_snapshot(ScriptedStateMachine(script), str(tmp_path / "snap"))  # type: ignore[arg-type]


async def test_cancelling_the_writer_stops_the_process(tmp_path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
        "time.sleep(600)\n"  # a snapshot that never ends
    )
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_snapshot, ScriptedStateMachine(script), str(tmp_path / "s"))
            while not pid_file.exists():
                await trio.sleep(0.01)
            pid = int(pid_file.read_text())
            os.kill(pid, 0)  # it runs
            nursery.cancel_scope.cancel()
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)


def test_the_answer_is_the_last_line() -> None:
    assert parse_index_term(b"starting\n10 2\n") == (10, 2)
    for bad in (b"", b"10\n", b"10 x\n", b"-1 2\n", b"1 2 3\n"):
        with pytest.raises(SnapshotProcessError):
            parse_index_term(bad)
