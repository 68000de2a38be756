"""Taking the state machine's snapshot without stalling the node's event loop.

A state machine that writes its snapshot in Python holds the GIL while it does; in a worker
thread of the node that starves the Trio loop, which gives the GIL up at every syscall and waits
up to a switch interval to get it back each time (docs/raft.md, "Stalls"). A state machine that
offers ``snapshot_command(path)`` (raft_zmq/statemachine.py) has the snapshot written by a
process of its own: the node runs it with ``trio.run_process``, which kills it if the node is
cancelled and raises if it fails, and reads the ``<index> <term>`` it prints last. One without
``snapshot_command`` is called in a worker thread, as before.
"""

from __future__ import annotations

import subprocess

import trio

from raft_zmq.statemachine import StateMachine

STDERR_TAIL_BYTES_MAX = 2000


class SnapshotProcessError(RuntimeError):
    """The snapshot process failed or answered something other than ``<index> <term>``."""


async def write_snapshot(state_machine: StateMachine, path: str) -> tuple[int, int]:
    """Write the snapshot to ``path`` (durable on return) and return its (index, term). On any
    failure or cancellation this raises and the caller discards ``path``."""
    command = getattr(state_machine, "snapshot_command", None)
    if command is None:
        return await trio.to_thread.run_sync(state_machine.snapshot, path)
    argv = await trio.to_thread.run_sync(command, path)
    try:
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"")[-STDERR_TAIL_BYTES_MAX:].decode(errors="replace")
        raise SnapshotProcessError(f"snapshot process exited {exc.returncode}: {tail}") from exc
    return parse_index_term(done.stdout)


def parse_index_term(stdout: bytes) -> tuple[int, int]:
    lines = stdout.decode(errors="replace").strip().splitlines()
    fields = lines[-1].split() if lines else []
    if len(fields) != 2 or not all(field.isdigit() for field in fields):
        raise SnapshotProcessError(f"snapshot process answered {stdout[-200:]!r}")
    return int(fields[0]), int(fields[1])
