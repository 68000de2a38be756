"""Room for the state: the LMDB map that grows when it is full, and which failures mean "no room".

A full map or a full disk used to make ``apply`` raise on every replica at the same committed
entry, and again at every restart: the whole cluster crash-looped (docs/operations.md, "Disk
full"). Now a full map is grown (doubled, up to ``STATE_MAP_SIZE_BYTES_MAX``) and the whole
transaction retried from scratch, as the Raft log's storage does; a map that cannot grow, or a
disk with no room for the commit, becomes ``raft_zmq.statemachine.StorageFull`` with nothing
applied, which the driver retries later instead of crashing.

``set_mapsize`` replaces the memory map and invalidates every transaction of the process, so it
must not run while another thread reads (a snapshot runs in a worker thread): ``MapGate`` lets
any number of readers in at once and makes the grower wait until none is inside.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import lmdb

from raft_zmq.statemachine import StorageFull
from raft_zmq.storage import NO_ROOM_FREE_BYTES_MAX  # one rule for both stores

STATE_MAP_SIZE_DEFAULT_BYTES = 64 << 30  # address space, not disk: the file grows as data does
STATE_MAP_SIZE_BYTES_MAX = 1 << 40  # the map doubles up to this, then apply raises StorageFull
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

logger = logging.getLogger("doq.state")
T = TypeVar("T")


def disk_free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the file system that holds ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class MapGate:
    """Readers share the map; the one who grows it waits until no reader is inside and keeps new
    readers out meanwhile. ``with gate:`` is one read (a plain context manager, not a generator:
    every read of the state passes here)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._moving = False

    def __enter__(self) -> None:
        self._lock.acquire()  # the lock itself, not the Condition's wrapper: the hot path
        try:
            while self._moving:
                self._cond.wait()
            self._readers += 1
        finally:
            self._lock.release()

    def __exit__(self, *_exc: object) -> None:
        self._lock.acquire()
        try:
            self._readers -= 1
            if self._readers == 0 and self._moving:
                self._cond.notify_all()
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def moving(self) -> Iterator[None]:
        with self._cond:
            while self._moving:  # another grower first
                self._cond.wait()
            self._moving = True  # no new reader from now on
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._moving = False
                self._cond.notify_all()


class Room:
    """The map of one environment: its size, its limit, and the retry loop of every write."""

    def __init__(
        self,
        env: lmdb.Environment,
        path: str,
        map_size_bytes: int,
        map_size_max_bytes: int,
        free_bytes: Callable[[str], int],
    ) -> None:
        self._env = env
        self._path = path
        # What the environment uses: a map grown before a restart is larger than asked for.
        self.map_size_bytes = max(map_size_bytes, env.info()["map_size"])
        self._map_size_max_bytes = max(map_size_max_bytes, map_size_bytes)
        self._free_bytes = free_bytes
        self.gate = MapGate()

    def write(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` (one whole write transaction that aborts itself when it raises) until
        it fits: a full map grows and the attempt starts again from scratch."""
        while True:
            try:
                return attempt()
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as exc:
                if self._no_room(exc):
                    raise StorageFull(f"no room on disk for the state at {self._path}") from exc
                raise

    def _grow(self) -> None:
        if self.map_size_bytes >= self._map_size_max_bytes:
            raise StorageFull(
                f"the state's LMDB map at {self._path} is full at its maximum of "
                f"{self.map_size_bytes} B"
            )
        new_size = min(self.map_size_bytes * 2, self._map_size_max_bytes)
        with self.gate.moving():
            self._env.set_mapsize(new_size)
        logger.info("state LMDB map grown from %d to %d B", self.map_size_bytes, new_size)
        self.map_size_bytes = new_size

    def _no_room(self, exc: lmdb.Error) -> bool:
        if isinstance(exc, lmdb.DiskError) or getattr(exc, "errno", None) in _NO_ROOM_ERRNOS:
            return True
        if "No space left" in str(exc):
            return True
        if "Input/output error" not in str(exc):
            return False
        try:
            return self._free_bytes(self._path) <= NO_ROOM_FREE_BYTES_MAX
        except OSError:
            return False
