"""Room for the state (issue 10, finding 3): a full LMDB map grows and the batch applies; a map that
may not grow, or a disk with no room, raises ``StorageFull`` with nothing applied, and the same
entries apply once there is room. Before, a full map raised ``MapFullError`` out of ``apply`` on
every replica and at every restart: the cluster crash-looped.

The real-disk test fills a 4 MiB tmpfs, so it runs as root only and skips cleanly otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from doq.commands import CreateQueue, Enqueue, NewMessage, QueueType
from doq.state.machine import QueueStateMachine
from doq.state.results import Enqueued
from doq.state.room import NO_ROOM_FREE_BYTES_MAX, MapGate, Room
from raft_zmq.statemachine import StorageFull

from .helpers import Log, open_machine
from .strategies import START_MS

T = START_MS
TINY_MAP_BYTES = 1 << 20
CONTENT_CHARS = 60_000  # a few of these overflow a 1 MiB map
GATE_WAIT_S = 5.0  # generous: the waits below end on events, this only bounds a hang


def big_enqueues(first_id: int, count: int) -> list[Enqueue]:
    return [
        Enqueue(T, "q", (NewMessage(first_id + i, 0, chr(65 + i % 26) * CONTENT_CHARS),))
        for i in range(count)
    ]


def test_a_full_map_grows_and_the_whole_batch_applies(tmp_path: Path) -> None:
    small = open_machine(str(tmp_path / "small"), map_size_bytes=TINY_MAP_BYTES)
    large = open_machine(str(tmp_path / "large"))
    commands = [CreateQueue(T, "q", QueueType.DELAYED, 5), *big_enqueues(1, 40)]
    small_log, large_log = Log(), Log()
    results = small.apply(small_log.entries(*commands))
    assert results == large.apply(large_log.entries(*commands))
    assert all(isinstance(r, Enqueued) for r in results[1:])
    assert small.logical_dump() == large.logical_dump()
    assert small.last_applied() == (len(commands), 1)
    assert small._room.map_size_bytes > TINY_MAP_BYTES
    small.close()
    large.close()


def test_a_map_at_its_maximum_raises_storage_full_and_applies_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    sm = open_machine(path, map_size_bytes=TINY_MAP_BYTES, map_size_max_bytes=TINY_MAP_BYTES)
    log = Log()
    sm.apply(log.entries(CreateQueue(T, "q", QueueType.DELAYED, 5)))
    before, applied = sm.logical_dump(), sm.last_applied()
    batch = log.entries(*big_enqueues(1, 40))
    with pytest.raises(StorageFull, match="maximum"):
        sm.apply(batch)
    assert sm.logical_dump() == before and sm.last_applied() == applied
    with pytest.raises(StorageFull):  # and again: a retry before there is room changes nothing
        sm.apply(batch)
    assert sm.last_applied() == applied
    sm.close()
    # The operator raises the limit (or frees room): the same entries apply.
    sm = open_machine(path, map_size_bytes=TINY_MAP_BYTES, map_size_max_bytes=64 * TINY_MAP_BYTES)
    assert all(isinstance(r, Enqueued) for r in sm.apply(batch))
    assert sm.last_applied() == (batch[-1].index, 1)
    sm.close()


def test_an_io_error_is_no_room_only_when_the_disk_is_nearly_full(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "e"), map_size=TINY_MAP_BYTES)
    free = [NO_ROOM_FREE_BYTES_MAX * 100]
    room = Room(env, str(tmp_path), TINY_MAP_BYTES, TINY_MAP_BYTES, lambda _path: free[0])

    def failing_commit() -> None:
        raise lmdb.Error("mdb_txn_commit: Input/output error")

    with pytest.raises(lmdb.Error) as raised:  # a failing disk with room: not ours to hide
        room.write(failing_commit)
    assert not isinstance(raised.value, StorageFull)
    free[0] = 0
    with pytest.raises(StorageFull):
        room.write(failing_commit)

    def no_space() -> None:
        raise lmdb.DiskError("mdb_txn_commit: No space left on device")

    free[0] = NO_ROOM_FREE_BYTES_MAX * 100
    with pytest.raises(StorageFull):
        room.write(no_space)
    env.close()


def test_the_map_moves_only_when_no_reader_is_inside() -> None:
    gate = MapGate()
    reader_inside, release_reader, moved = threading.Event(), threading.Event(), threading.Event()

    def reader() -> None:
        with gate:
            reader_inside.set()
            release_reader.wait(GATE_WAIT_S)

    def mover() -> None:
        with gate.moving():
            moved.set()

    threads = [threading.Thread(target=reader)]
    threads[0].start()
    assert reader_inside.wait(GATE_WAIT_S)
    threads.append(threading.Thread(target=mover))
    threads[1].start()
    assert not moved.wait(0.05)  # still blocked while the reader is inside
    release_reader.set()
    assert moved.wait(GATE_WAIT_S)
    for thread in threads:
        thread.join(GATE_WAIT_S)


# --- a real full disk ----------------------------------------------------------------------------

TMPFS_BYTES = 4 << 20


@contextlib.contextmanager
def small_tmpfs(where: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_raises_storage_full_and_the_entries_apply_once_room_is_made(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        sm = QueueStateMachine(str(disk / "state"), map_size_bytes=1 << 30, sync=True)
        log = Log()
        sm.apply(log.entries(CreateQueue(T, "q", QueueType.DELAYED, 5)))
        filler = disk / "filler"
        # ENOSPC ends the loop: the disk is now full.
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        before, applied = sm.logical_dump(), sm.last_applied()
        batch = log.entries(*big_enqueues(1, 10))
        with pytest.raises(StorageFull, match="no room on disk"):
            sm.apply(batch)
        assert sm.logical_dump() == before and sm.last_applied() == applied
        filler.unlink()
        assert all(isinstance(r, Enqueued) for r in sm.apply(batch))
        assert sm.last_applied() == (batch[-1].index, 1)
        sm.close()


def test_restore_grows_the_map_or_raises_storage_full_changing_nothing(tmp_path: Path) -> None:
    source = open_machine(str(tmp_path / "source"))
    source.apply(Log().entries(CreateQueue(T, "q", QueueType.DELAYED, 5), *big_enqueues(1, 40)))
    snapshot = str(tmp_path / "snap")
    source.snapshot(snapshot)
    capped = open_machine(
        str(tmp_path / "capped"), map_size_bytes=TINY_MAP_BYTES, map_size_max_bytes=TINY_MAP_BYTES
    )
    before = capped.logical_dump()
    with pytest.raises(StorageFull):
        capped.restore(snapshot)
    assert capped.logical_dump() == before and capped.last_applied() == (0, 0)
    growing = open_machine(str(tmp_path / "growing"), map_size_bytes=TINY_MAP_BYTES)
    assert growing.restore(snapshot) == source.last_applied()
    assert growing.logical_dump() == source.logical_dump()
    for sm in (source, capped, growing):
        sm.close()


def test_a_reopened_state_knows_the_map_lmdb_gives_it_and_grows_from_there(tmp_path: Path) -> None:
    """LMDB opens a map at least as large as the data in it, whatever size was asked for."""
    path = str(tmp_path / "s")
    sm = open_machine(path, map_size_bytes=TINY_MAP_BYTES)
    log = Log()
    sm.apply(log.entries(CreateQueue(T, "q", QueueType.DELAYED, 5), *big_enqueues(1, 40)))
    sm.close()
    reopened = open_machine(path, map_size_bytes=TINY_MAP_BYTES)
    actual = reopened._env.info()["map_size"]
    assert reopened._room.map_size_bytes == actual > TINY_MAP_BYTES
    assert all(isinstance(r, Enqueued) for r in reopened.apply(log.entries(*big_enqueues(41, 40))))
    assert reopened._room.map_size_bytes == 2 * actual
    reopened.close()
