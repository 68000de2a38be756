"""Whether a state written without fdatasync can be trusted when the node opens it again.

Why the state is not synced: the leader answers a write once its entry is durable in a majority's
Raft logs and applied here. An fdatasync of the state at every apply put a second fsync in series
behind the log's (docs/benchmarks.md, "Single-message latency"), and it protects nothing the log
does not already hold: every applied entry is durable in this node's own log first (persist before
you speak), so a state that lost its last transactions is brought up to date by applying them again
from the log, and the state machine is deterministic.

What must hold instead: the state must be either consistent (some prefix of the log applied, its
applied index saying which) or known to be lost. LMDB without sync keeps every committed
transaction across a crash of the process (its writes are in the kernel's page cache, and the
meta page is written last), but after a crash of the machine the file can hold any mix of old and
new pages, a corrupt tree LMDB cannot detect. So the state directory holds a marker, ``UNSYNCED``,
while writes may be unsynced; it names the machine's boot. At open the state is trusted when there
is no marker (closed cleanly: synced, marker removed) or the marker names the current boot (only
the process died). Otherwise the machine restarted under unsynced writes: the state is discarded
and the node rebuilds it from the snapshot its log starts from and the log after it
(raft_zmq/recovery.py), as a new follower would (docs/storage.md, "The state's durability").
"""

from __future__ import annotations

import contextlib
import os

BOOT_ID_PATH_DEFAULT = "/proc/sys/kernel/random/boot_id"  # Linux: a new random UUID at each boot
MARKER_NAME = "UNSYNCED"
LMDB_FILE_NAMES = ("data.mdb", "lock.mdb")


def boot_id(path: str = BOOT_ID_PATH_DEFAULT) -> str | None:
    """This boot of the machine, or None where there is no such file: every restart of the
    process is then treated as a restart of the machine (the safe side)."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def is_trusted(state_dir: str, boot: str | None) -> bool:
    """The state in ``state_dir`` is what its own applied index says (see the module doc)."""
    try:
        with open(os.path.join(state_dir, MARKER_NAME), encoding="ascii") as f:
            marked = f.read().strip()
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError):
        return False
    return boot is not None and marked == boot


def mark_unsynced(state_dir: str, boot: str | None) -> None:
    """Record, durably and before the first unsynced write, that writes may be unsynced from now
    on, under this boot."""
    path = os.path.join(state_dir, MARKER_NAME)
    temp = path + ".tmp"
    try:
        with open(temp, "w", encoding="ascii") as f:
            f.write(boot or "")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _sync_directory(state_dir)


def mark_synced(state_dir: str) -> None:
    """Everything written is durable (the environment was synced): drop the marker."""
    try:
        os.remove(os.path.join(state_dir, MARKER_NAME))
    except FileNotFoundError:
        return
    _sync_directory(state_dir)


def discard(state_dir: str) -> None:
    """Remove the LMDB files of an untrusted state (and the marker with them): the node starts
    from an empty state and restores it from its snapshot and log."""
    for name in LMDB_FILE_NAMES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(state_dir, name))
    _sync_directory(state_dir)
    mark_synced(state_dir)


def _sync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
