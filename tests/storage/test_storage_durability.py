"""What RaftStorage promises across restarts and damage: a restart reloads exactly what was
saved; any damage, a corrupt last entry included (LMDB commits are atomic, so it is not a torn
write and it may have been acknowledged), stops the node with StorageCorruptError instead of
dropping an entry or serving a wrong log; a full map grows; bad input changes
nothing; a closed storage refuses every call."""

from __future__ import annotations

import re
from pathlib import Path

import lmdb
import pytest

import raft_zmq.storage as storage_module
from raft_zmq.core.types import ClusterConfig, Entry, HardState, Server, SnapshotMeta
from raft_zmq.storage import (
    TAIL_VERIFY_ENTRIES,
    RaftStorage,
    StorageClosedError,
    StorageCorruptError,
    encode_entry,
    encode_snapshot_meta,
    index_key,
)

# the on-disk names the tests reach into (they are part of the format, docs/storage.md)
LOG_DB = b"raft_log"
META_DB = b"raft_meta"
SNAPSHOT_KEY = b"snapshot"
BIG_BYTES = 10**9


def entries(first: int, last: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [
        Entry(i, term, 0, f"{i}-{term}".encode().ljust(size, b".")) for i in range(first, last + 1)
    ]


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "raft")


def write_raw(path: str, db_name: bytes, key: bytes, value: bytes | None) -> None:
    """Change the LMDB environment behind the storage's back (the storage must be closed)."""
    env = lmdb.open(path, subdir=True, max_dbs=2)
    try:
        db = env.open_db(db_name)
        with env.begin(write=True, db=db) as txn:
            if value is None:
                txn.delete(key)
            else:
                txn.put(key, value)
    finally:
        env.close()


def read_raw(path: str, index: int) -> bytes:
    env = lmdb.open(path, subdir=True, max_dbs=2, readonly=True)
    try:
        with env.begin(db=env.open_db(LOG_DB, create=False)) as txn:
            value = txn.get(index_key(index))
            assert value is not None
            return bytes(value)
    finally:
        env.close()


def corrupt_entry(path: str, index: int) -> None:
    value = bytearray(read_raw(path, index))
    value[-1] ^= 0xFF  # one flipped bit-pattern in the data: only the checksum can tell
    write_raw(path, LOG_DB, index_key(index), bytes(value))


def saved_log(path: str, last: int, commit: int = 0) -> None:
    storage = RaftStorage.open(path)
    storage.save(HardState(term=3, vote="node-1", commit=commit), entries(1, last, term=3))
    storage.close()


def test_restart_reloads_hard_state_snapshot_meta_and_log(path: str) -> None:
    config = ClusterConfig((Server("node-0", "127.0.0.1:7000"), Server("node-1", "127.0.0.1:7001")))
    storage = RaftStorage.open(path)
    storage.save(HardState(term=2, vote="node-0", commit=5), entries(1, 10, term=2))
    storage.save(None, entries(8, 12, term=3))  # truncates 8..10, appends 8..12 of term 3
    storage.compact(SnapshotMeta(index=4, term=2, config=config))
    storage.save(HardState(term=3, vote=None, commit=9), [])
    before = (storage.first_index(), storage.last_index(), storage.entries(5, 13, BIG_BYTES))
    storage.close()

    reopened = RaftStorage.open(path)
    assert reopened.initial_state() == (
        HardState(term=3, vote=None, commit=9),
        SnapshotMeta(index=4, term=2, config=config),
    )
    assert (
        reopened.first_index(),
        reopened.last_index(),
        reopened.entries(5, 13, BIG_BYTES),
    ) == before
    assert [reopened.term(i) for i in range(4, 13)] == [2, 2, 2, 2, 3, 3, 3, 3, 3]
    reopened.close()


def test_corrupt_last_entry_refuses_to_open_and_nothing_is_dropped(path: str) -> None:
    # LMDB commits are atomic: a stored entry failing its checksum is damage, not a torn write,
    # and it may have counted toward a commit that the durable commit index (9) does not show.
    saved_log(path, last=10, commit=9)
    corrupt_entry(path, 10)
    damaged = read_raw(path, 10)
    for _ in range(2):  # refusing is not a one-off: the next start refuses as well
        with pytest.raises(StorageCorruptError) as caught:
            RaftStorage.open(path)
        message = str(caught.value)
        assert "log entry 10: checksum mismatch (the last entry" in message
        assert str(Path(path) / "data.mdb") in message  # the file
        assert "Repair: remove this server from the cluster's configuration" in message
    assert read_raw(path, 10) == damaged  # still there, as it was: nothing dropped
    assert read_raw(path, 9) == encode_entry(entries(1, 10, term=3)[8])


def test_corrupt_last_entry_that_commit_covers_is_fatal_too(path: str) -> None:
    saved_log(path, last=10, commit=10)
    corrupt_entry(path, 10)
    with pytest.raises(StorageCorruptError, match="log entry 10: checksum mismatch"):
        RaftStorage.open(path)


def test_corrupt_middle_entry_refuses_to_open(path: str) -> None:
    saved_log(path, last=10)
    corrupt_entry(path, 5)
    with pytest.raises(StorageCorruptError, match="log entry 5: checksum mismatch"):
        RaftStorage.open(path)


def test_corrupt_entry_before_the_verified_tail_is_caught_on_every_read(path: str) -> None:
    last = TAIL_VERIFY_ENTRIES + 50
    saved_log(path, last=last)
    corrupt_entry(path, 10)
    storage = RaftStorage.open(path)  # only the tail is verified on open
    with pytest.raises(StorageCorruptError, match="log entry 10"):
        storage.entries(5, 20, BIG_BYTES)
    with pytest.raises(StorageCorruptError, match="log entry 10"):
        storage.term(10)
    assert storage.entries(11, last + 1, BIG_BYTES) == entries(11, last, term=3)
    storage.close()


def test_entry_stored_under_the_wrong_index_fails_its_checksum(path: str) -> None:
    saved_log(path, last=10)
    write_raw(path, LOG_DB, index_key(4), read_raw(path, 5))  # same term and kind, other index
    with pytest.raises(StorageCorruptError, match="log entry 4: checksum mismatch"):
        RaftStorage.open(path)


def test_gap_in_the_log_refuses_to_open(path: str) -> None:
    saved_log(path, last=10)
    write_raw(path, LOG_DB, index_key(6), None)
    with pytest.raises(StorageCorruptError, match=re.escape("entries 6..6 are missing")):
        RaftStorage.open(path)


def test_log_starting_after_the_snapshot_refuses_to_open(path: str) -> None:
    saved_log(path, last=10)
    write_raw(path, LOG_DB, index_key(1), None)
    with pytest.raises(StorageCorruptError, match=re.escape("entries 1..1 missing")):
        RaftStorage.open(path)


def test_corrupt_hard_state_refuses_to_open(path: str) -> None:
    saved_log(path, last=3)
    write_raw(path, META_DB, b"hard_state", b"\x00" * 21)
    with pytest.raises(StorageCorruptError, match="hard state"):
        RaftStorage.open(path)


def test_compaction_interrupted_by_a_crash_is_finished_on_open(path: str) -> None:
    saved_log(path, last=30)
    # the crash: the new snapshot metadata committed, none of the covered entries deleted yet
    write_raw(path, META_DB, SNAPSHOT_KEY, encode_snapshot_meta(SnapshotMeta(index=20, term=3)))
    storage = RaftStorage.open(path)
    assert (storage.first_index(), storage.last_index(), storage.term(20)) == (21, 30, 3)
    storage.close()
    env = lmdb.open(path, subdir=True, max_dbs=2, readonly=True)
    with env.begin(db=env.open_db(LOG_DB, create=False)) as txn:
        assert txn.stat(env.open_db(LOG_DB, create=False))["entries"] == 10
    env.close()


def test_compaction_deletes_a_large_prefix_in_bounded_transactions(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "DELETE_CHUNK_ENTRIES", 7)
    storage = RaftStorage.open(path)
    storage.save(None, entries(1, 100))
    commits = []
    write = storage._write

    def counted_write(body):  # type: ignore[no-untyped-def]
        commits.append(body)
        return write(body)

    monkeypatch.setattr(storage, "_write", counted_write)
    storage.compact(SnapshotMeta(index=90, term=1))
    assert len(commits) == 1 + 90 // 7 + 1  # the metadata, full chunks, the last partial chunk
    assert (storage.first_index(), storage.last_index()) == (91, 100)
    storage.close()
    env = lmdb.open(path, subdir=True, max_dbs=2, readonly=True)
    db = env.open_db(LOG_DB, create=False)
    with env.begin(db=db) as txn:
        assert txn.stat(db)["entries"] == 10
    env.close()


def test_deferred_compaction_moves_the_bounds_at_once_and_deletes_later(path: str) -> None:
    storage = RaftStorage.open(path)
    storage.save(None, entries(1, 50))
    storage.compact(SnapshotMeta(index=40, term=1), delete_now=False)
    assert (storage.first_index(), storage.last_index(), storage.term(40)) == (41, 50, 1)
    with pytest.raises(IndexError):
        storage.entries(40, 42, 1 << 20)
    storage.delete_garbage()
    storage.close()
    env = lmdb.open(path, subdir=True, max_dbs=2, readonly=True)
    db = env.open_db(LOG_DB, create=False)
    with env.begin(db=db) as txn:
        assert txn.stat(db)["entries"] == 10
    env.close()


def test_tiny_map_grows_instead_of_failing(path: str) -> None:
    tiny_bytes = 64 * 1024
    storage = RaftStorage.open(path, map_size_bytes=tiny_bytes)
    for batch in range(20):
        first = batch * 100 + 1
        storage.save(HardState(term=1), entries(first, first + 99, size=1000))
    assert storage.map_size_bytes() > tiny_bytes
    assert storage.last_index() == 2000
    storage.close()
    reopened = RaftStorage.open(path, map_size_bytes=tiny_bytes)
    assert reopened.entries(1995, 2001, BIG_BYTES) == entries(1995, 2000, size=1000)
    reopened.save(None, entries(2001, 2100, size=1000))
    reopened.close()


@pytest.mark.parametrize(
    "bad_batch",
    [
        entries(13, 14),  # past the end (the log ends at 10)
        [Entry(11, 3, 0, b"a"), Entry(13, 3, 0, b"b")],  # a gap inside the batch
        [Entry(11, -1, 0, b"a")],  # a term that cannot be stored
        [Entry(11, 3, 256, b"a")],  # a kind that cannot be stored
    ],
)
def test_bad_batch_is_refused_and_changes_nothing(path: str, bad_batch: list[Entry]) -> None:
    saved_log(path, last=10, commit=2)
    storage = RaftStorage.open(path)
    with pytest.raises(ValueError):
        storage.save(HardState(term=9, vote="x", commit=9), bad_batch)
    assert storage.initial_state()[0] == HardState(term=3, vote="node-1", commit=2)
    storage.close()
    reopened = RaftStorage.open(path)
    assert reopened.initial_state()[0] == HardState(term=3, vote="node-1", commit=2)
    assert reopened.entries(1, 11, BIG_BYTES) == entries(1, 10, term=3)
    reopened.close()


def test_hard_state_or_snapshot_meta_that_cannot_be_stored_is_refused(path: str) -> None:
    saved_log(path, last=10, commit=2)
    storage = RaftStorage.open(path)
    with pytest.raises(ValueError, match="hard state term and commit out of range"):
        storage.save(HardState(term=-1), entries(8, 12, term=4))
    with pytest.raises(ValueError, match="snapshot index and term out of range"):
        storage.install_snapshot(SnapshotMeta(index=3, term=2**64))
    with pytest.raises(ValueError, match="snapshot index and term out of range"):
        storage.compact(SnapshotMeta(index=3, term=-5))
    storage.close()
    reopened = RaftStorage.open(path)
    assert reopened.initial_state() == (HardState(term=3, vote="node-1", commit=2), SnapshotMeta())
    assert reopened.entries(1, 11, BIG_BYTES) == entries(1, 10, term=3)
    reopened.close()


def test_append_before_the_first_index_is_refused(path: str) -> None:
    storage = RaftStorage.open(path)
    storage.save(None, entries(1, 10))
    storage.compact(SnapshotMeta(index=5, term=1))
    with pytest.raises(ValueError, match=re.escape("append at 5 outside 6..11")):
        storage.save(None, entries(5, 6))
    storage.close()


def test_every_method_after_close_raises_a_clear_error(path: str) -> None:
    storage = RaftStorage.open(path)
    storage.save(None, entries(1, 3))
    storage.close()
    storage.close()  # idempotent
    calls = [
        storage.first_index,
        storage.last_index,
        lambda: storage.term(1),
        lambda: storage.entries(1, 2, BIG_BYTES),
        lambda: storage.save(HardState(), []),
        lambda: storage.install_snapshot(SnapshotMeta(index=2, term=1)),
        lambda: storage.compact(SnapshotMeta(index=2, term=1)),
        storage.initial_state,
        storage.map_size_bytes,
    ]
    for call in calls:
        with pytest.raises(StorageClosedError, match="is closed"):
            call()


def test_fresh_storage_starts_empty(path: str) -> None:
    storage = RaftStorage.open(path)
    assert storage.initial_state() == (HardState(), SnapshotMeta())
    assert (storage.first_index(), storage.last_index(), storage.term(0)) == (1, 0, 0)
    assert storage.entries(1, 1, BIG_BYTES) == []
    with pytest.raises(IndexError):
        storage.term(1)
    storage.close()
