"""The snapshot written by a process of its own, so that the node's event loop does not stall.

Writing a snapshot is Python work on every record (doq/state/snapshot.py). In a worker thread of
the node it held the GIL in 5 ms slices while the Trio loop, which gives the GIL up at every
syscall, waited up to a switch interval to get it back each time (docs/reliability.md, finding
2, measured rounds of 0.2 to 0.6 s beside snapshot writes; docs/benchmarks.md, "Snapshot stall").
A child process has a GIL of its own.

The child opens the same LMDB environment read-only. LMDB serves readers in several processes
through its lock file, and a read transaction is one consistent point there as in the node: the
child reads the applied (index, term) and every record in that one transaction and writes the
same bytes ``QueueStateMachine.snapshot`` writes, then fsyncs the file and its directory. The
node's ``MapGate`` (doq/state/room.py) is not needed: it guards the node's own memory map against
``set_mapsize``, and the child maps the file by itself. A map the node grew since the child opened
it makes the read transaction fail with ``MapResizedError``: the child adopts the new size and
begins again.

The child runs at a lower CPU priority (``SNAPSHOT_NICENESS``): where it shares a core with the
node's loop, the loop is scheduled first.

Protocol (``raft_zmq.statemachine.StateMachine.snapshot_command``): the argv comes from
``command``; the child prints ``<index> <term>`` on its last line of stdout and exits 0; any
failure exits non-zero with the reason on stderr, and the caller discards the file.
"""

from __future__ import annotations

import os
import sys

import lmdb

from doq.state.batch import Dbs, read_applied
from doq.state.layout import DB_NAMES, LMDB_NAMED_DBS_MAX, LMDB_READERS_MAX
from doq.state.snapshot import write_snapshot_file

MAP_RESIZED_RETRIES_MAX = 8
# Background work: on a busy core the node's loop goes first (docs/benchmarks.md, "Snapshot
# stall": a core shared by the loop and the child). The snapshot still gets a share, only later.
SNAPSHOT_NICENESS = 10


def command(state_path: str, out_path: str) -> list[str]:
    """The argv of a child that writes the snapshot of the environment at ``state_path``."""
    return [sys.executable, "-m", __name__, state_path, out_path]


def open_readonly(state_path: str) -> lmdb.Environment:
    return lmdb.open(
        state_path,
        readonly=True,
        create=False,
        max_dbs=LMDB_NAMED_DBS_MAX,
        max_readers=LMDB_READERS_MAX,
        readahead=False,
    )


def begin(env: lmdb.Environment) -> lmdb.Transaction:
    for _ in range(MAP_RESIZED_RETRIES_MAX):
        try:
            return env.begin()
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # adopt the size the node grew the map to
    raise lmdb.MapResizedError("the map kept growing while the snapshot began")


def write_from(state_path: str, out_path: str) -> tuple[int, int]:
    """Write the snapshot of the state at ``state_path`` to ``out_path``, durably."""
    env = open_readonly(state_path)
    try:
        with begin(env) as txn:
            # Handles opened in a read transaction are valid in it (and closed when it ends).
            handles = {name: env.open_db(name.encode(), txn=txn, create=False) for name in DB_NAMES}
            dbs = Dbs(**handles)
            index, term = read_applied(txn, dbs)
            write_snapshot_file(txn, dbs, out_path, index, term)
        return index, term
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m doq.state.snapshot_process STATE_DIR OUT_FILE", file=sys.stderr)
        return 2
    state_path, out_path = args
    if not os.path.isdir(state_path):
        print(f"no state environment at {state_path}", file=sys.stderr)
        return 1
    os.nice(SNAPSHOT_NICENESS)
    index, term = write_from(state_path, out_path)
    print(f"{index} {term}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
