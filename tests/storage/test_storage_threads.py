"""The driver's way of using RaftStorage: ``save`` in a worker thread (trio.to_thread) while the
core reads in the Trio thread. A read must never see a half-applied write: no missing entry, no
mix of a truncated suffix and its replacement, no corruption error."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from raft_zmq.core.types import Entry, HardState, SnapshotMeta
from raft_zmq.storage import RaftStorage

WRITE_STEPS = 300
SEED = 20240611
BIG_BYTES = 10**9


def described(index: int, term: int) -> Entry:
    """An entry whose data names its own index and term, so a reader can check it in isolation."""
    return Entry(index, term, 0, f"{index}/{term}".encode())


def check_read(storage: RaftStorage) -> bool:
    """One consistent read of the whole log; False if the bounds moved between the calls."""
    first, last = storage.first_index(), storage.last_index()
    try:
        got = storage.entries(first, last + 1, BIG_BYTES)
        snapshot_term = storage.term(first - 1)
    except IndexError:
        return False  # a write moved the bounds between the two calls: allowed
    assert [e.index for e in got] == list(range(first, first + len(got)))
    assert all(e.data == f"{e.index}/{e.term}".encode() for e in got)
    terms = [snapshot_term] + [e.term for e in got]
    assert terms == sorted(terms), "a truncated suffix mixed with its replacement"
    return True


async def test_reads_in_the_trio_thread_stay_consistent_while_saves_run_in_a_worker(
    tmp_path: Path,
) -> None:
    storage = RaftStorage.open(str(tmp_path / "raft"))
    storage.save(HardState(term=1), [described(i, 1) for i in range(1, 51)])
    rng = random.Random(SEED)
    writing = False
    reads_during_writes = 0
    done = trio.Event()

    async def writer() -> None:
        nonlocal writing
        term = 1
        for step in range(WRITE_STEPS):
            first, last = storage.first_index(), storage.last_index()
            writing = True
            if step % 10 == 9 and last - first > 30:
                meta = SnapshotMeta(index=last - 20, term=storage.term(last - 20))
                await trio.to_thread.run_sync(storage.compact, meta)
            else:
                start = max(first, last + 1 - (rng.randint(1, 6) if step % 4 == 3 else 0))
                term += 1 if start <= last else 0
                batch = [described(i, term) for i in range(start, start + rng.randint(1, 16))]
                await trio.to_thread.run_sync(storage.save, HardState(term=term), batch)
            writing = False
        done.set()

    async def reader() -> None:
        nonlocal reads_during_writes
        while not done.is_set():
            if check_read(storage) and writing:
                reads_during_writes += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        nursery.start_soon(reader)

    assert reads_during_writes > 0, "the reads never overlapped a write: the test proved nothing"
    assert check_read(storage)
    storage.close()
