"""Admission by disk room: a node whose data directory is short of space refuses new writes.

A write that reaches the log must be applied by every replica; once the disk is full it can be
neither stored nor applied, and the node can only retry (raft_zmq.statemachine.StorageFull). So
the leader stops proposing before that: below ``reserve_bytes`` free, every write answers 507
Insufficient Storage and changes nothing, while reads go on. The reserve leaves room for what is
already in flight, the Raft log's growth and a state snapshot's temporary file. Writes are
admitted again as soon as room is made (docs/operations.md, "Disk full").

Free space is read through an injectable function, so tests set it instead of filling a disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from doq.state.room import disk_free_bytes

STORAGE_RESERVE_BYTES_DEFAULT = 256 << 20  # --storage.reserve_bytes

logger = logging.getLogger("doq.diskguard")


@attrs.define
class DiskGuard:
    """``path``: the node's data directory (the Raft log and the state live under it)."""

    path: str
    reserve_bytes: int = STORAGE_RESERVE_BYTES_DEFAULT
    free_bytes_of: Callable[[str], int] = disk_free_bytes
    free_bytes: int | None = None  # as last read; None before the first read or when unreadable
    blocked: bool = False
    refused_writes: int = 0

    def check(self) -> bool:
        """Read the free space now; True when writes must be refused. A file system that cannot
        be asked (an OSError) does not block writes: apply still stops safely if it is full."""
        try:
            free = self.free_bytes_of(self.path)
        except OSError as exc:
            logger.warning("cannot read the free space of %s: %s", self.path, exc)
            self.free_bytes = None
            self.blocked = False
            return False
        self.free_bytes = free
        blocked = free < self.reserve_bytes
        if blocked != self.blocked:
            log = logger.warning if blocked else logger.info
            log(
                "%s: %d bytes free, reserve %d: writes %s",
                self.path,
                free,
                self.reserve_bytes,
                "refused" if blocked else "admitted again",
            )
        self.blocked = blocked
        return blocked

    def admit_write(self) -> bool:
        """Check before a write; count it when refused."""
        if self.check():
            self.refused_writes += 1
            return False
        return True
